"""Is the database there? Sort a failed connection into "wait" and "tell the operator".

The SQLSTATE codes are PostgreSQL's (Appendix A, "PostgreSQL Error Codes"); asyncpg raises
plain OSError / TimeoutError when the server cannot be reached at all.
"""

from __future__ import annotations

import socket

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.errors import DatabaseRefused

#: Server there but not ready to serve: starting up, shutting down, too many connections.
_TRANSIENT_SQLSTATE = {"57P03": "starting up", "57P01": "shutting down", "53300": "too many connections"}
_NO_DATABASE = "3D000"
_AUTH = {"28P01", "28000"}


def public_url(url: str) -> str:
    """The URL without user name, password or query (asyncpg takes a password there too):
    what a log line may show."""
    parsed = make_url(url)
    bare = parsed._replace(username=None, password=None).difference_update_query(parsed.query)
    return bare.render_as_string(hide_password=False)


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code else None


def transient(exc: BaseException) -> str | None:
    """Why waiting may help ("connection refused"), or None when it will not."""
    if isinstance(exc, socket.gaierror):
        return "host name not resolved"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, DBAPIError):
        code = _sqlstate(exc)
        if code in _TRANSIENT_SQLSTATE:
            return _TRANSIENT_SQLSTATE[code]
        if code is not None and code.startswith("08"):  # connection exception class
            return "connection failed"
    return None


def _refusal(exc: DBAPIError, url: str) -> DatabaseRefused | None:
    parsed = make_url(url)
    code = _sqlstate(exc)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    if code == _NO_DATABASE:
        name = parsed.database or "relais"
        owner = parsed.username or "relais"
        return DatabaseRefused(
            f"database: {name!r} does not exist on {where}. Create it, e.g. "
            f"`sudo -u postgres createdb --owner {owner} --encoding UTF8 --template template0 {name}`, "
            "then run `relais db upgrade -c <config>` (README, \"Production\")")
    if code in _AUTH:
        return DatabaseRefused(
            f"database: {where} refused user {parsed.username!r} (wrong password or unknown role). "
            "The URL comes from [database] url, url_file or RELAIS_DATABASE__URL")
    if parsed.get_backend_name() == "sqlite":
        return DatabaseRefused(f"database: cannot open SQLite file {parsed.database}: {exc.orig}")
    return None


async def connect(engine: AsyncEngine, url: str) -> None:
    """One `SELECT 1`. Raises DatabaseRefused for what waiting cannot fix; other failures
    (see `transient`) pass through for the caller to wait or report."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        if transient(exc) is None:
            refusal = _refusal(exc, url)
            if refusal is not None:
                raise refusal from None
        raise
