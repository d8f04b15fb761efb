"""Identifier authorities as SPEC §4 reads them: room for a URL, and cut at the last colon

`!id add urn:oid:<OID>:<id>` and `https://…:<id>` used to be cut at the first colon and kept
as authority `urn` / `https`, which no message ever matches: those rows are cut again at the
last colon (left as they are when the corrected identifier already belongs to someone).

Revision ID: 0007
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0012"
branch_labels = None
depends_on = None

_IDENTIFIERS = sa.table("person_identifiers", sa.column("id", sa.Integer), sa.column("authority", sa.String),
                        sa.column("value", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("person_identifiers") as batch:
        batch.alter_column("authority", existing_type=sa.String(length=64), type_=sa.String(length=255),
                           existing_nullable=False)
    conn = op.get_bind()
    cut = conn.execute(sa.select(_IDENTIFIERS).where(
        sa.func.lower(_IDENTIFIERS.c.authority).in_(["urn", "http", "https"]))).all()
    for row in cut:
        authority, _sep, value = f"{row.authority}:{row.value}".rpartition(":")
        if authority.lower().startswith("urn:oid:"):
            authority = "urn:oid:" + authority[len("urn:oid:"):]
        if not value or authority.lower() in ("urn", "http", "https"):
            continue
        taken = conn.execute(sa.select(_IDENTIFIERS.c.id).where(
            _IDENTIFIERS.c.authority == authority, _IDENTIFIERS.c.value == value)).first()
        if taken is None:
            conn.execute(sa.update(_IDENTIFIERS).where(_IDENTIFIERS.c.id == row.id)
                         .values(authority=authority, value=value))


def downgrade() -> None:
    with op.batch_alter_table("person_identifiers") as batch:
        batch.alter_column("authority", existing_type=sa.String(length=255), type_=sa.String(length=64),
                           existing_nullable=False)
