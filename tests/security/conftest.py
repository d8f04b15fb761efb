"""The integration tests' `hub` fixture (one bot, its people and database on the session Synapse)."""

from tests.integration.conftest import hub

__all__ = ["hub"]
