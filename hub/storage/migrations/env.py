"""Alembic environment: run by hub.storage.migrate with a live connection, never by URL."""

from __future__ import annotations

from alembic import context

from hub.storage import (  # noqa: F401 - registers their tables
    models_alerts,
    models_consent,
    models_handover,
    models_plan,
    models_readability,
    models_referral,
    models_rights,
)
from hub.storage.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite needs batch mode to alter tables
)
with context.begin_transaction():
    context.run_migrations()
