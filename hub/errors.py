"""One small hierarchy for errors that cross a boundary."""

from __future__ import annotations

from hub.domain.errors import DomainError

__all__ = ["ConfigError", "DomainError", "MatrixError", "RelaisError", "SchemaError", "TransientError"]


class RelaisError(Exception):
    """Base of the errors the CLI turns into one readable line and an exit code."""


class ConfigError(RelaisError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {key}: {problem}")
        self.key = key
        self.problem = problem


class SchemaError(RelaisError):
    """The database is not at the schema revision this code knows."""


class MatrixError(RelaisError):
    """The homeserver answered with an error (nio error responses are converted here)."""

    def __init__(self, what: str, errcode: str | None = None, retry_after_ms: int | None = None):
        super().__init__(f"{what}: {errcode or 'error'}")
        self.errcode = errcode
        self.retry_after_ms = retry_after_ms


class TransientError(MatrixError):
    """Try again later: homeserver away, rate limited, room not yet synced."""
