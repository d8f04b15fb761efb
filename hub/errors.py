"""One small hierarchy for errors that cross a boundary."""

from __future__ import annotations

from hub.domain.errors import DomainError

__all__ = ["ConfigError", "DatabaseRefused", "DomainError", "KeyShareFailed", "LoginRefused", "MatrixError",
           "RelaisError", "RoomGone", "RoomNotSynced", "SchemaError", "TransientError"]


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

    def __init__(self, what: str, errcode: str | None = None, retry_after_ms: int | None = None,
                 http_status: int | None = None):
        super().__init__(f"{what}: {errcode or 'error'}")
        self.errcode = errcode
        self.retry_after_ms = retry_after_ms
        self.http_status = http_status  # None when no HTTP answer was read


class TransientError(MatrixError):
    """Try again later: homeserver away, rate limited, room not yet synced."""


class SessionLost(TransientError):
    """The homeserver refuses the bot's access token (M_UNKNOWN_TOKEN, M_MISSING_TOKEN): its device
    was logged out while Relais ran. Nothing about the request is wrong, so what failed waits
    (a notice is never set aside for it) until the hub stops and the operator logs it in again."""


class RoomNotSynced(TransientError):
    """The bot's own sync has not shown a room yet (just made, or before the first sync): it
    waits on our sync, not on the homeserver's health, so it is tried again soon, not backed off."""

    def __init__(self, what: str) -> None:
        super().__init__(what, None)


class KeyShareFailed(TransientError):
    """A room key share did not reach the homeserver for every device: the outbound session was
    discarded and the send must be tried again (hub/bots/client.py)."""

    def __init__(self, what: str) -> None:
        super().__init__(what, None)


class RoomGone(MatrixError):
    """The room an action needs does not exist for the bot any more (deleted by an administrator,
    the bot removed from it) or was never made (its creation failed for good): never retried."""

    def __init__(self, what: str) -> None:
        super().__init__(what, "M_ROOM_GONE")


class DatabaseRefused(RelaisError):
    """The database server answered but will not serve us (no such database, wrong password):
    waiting does not fix it; the message says what the operator does."""


class LoginRefused(MatrixError):
    """The homeserver refused the bot's credentials; the message names the account, the
    homeserver and where the secret came from."""

    def __init__(self, message: str, errcode: str | None) -> None:
        super().__init__("login", errcode)
        self.args = (message,)
