"""`relais check-config`: what an operator can check before `relais run`.

Offline: warnings about a configuration that validates but will not work as meant. Online
(`--online`): the database (reachable, schema version), the homeserver (reachable, spec
versions), the bot's credentials — without leaving a device: the stored access token is used
when there is one, else a password login is logged out at once — and every configured person
(account exists, server allowed). Each check is one line; nothing is changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import ClientError, ClientSession, ClientTimeout
from sqlalchemy.engine import make_url

from hub.bots.client import transient as homeserver_transient
from hub.config import Config, is_loopback, reveal, secret_source
from hub.errors import RelaisError
from hub.storage import migrate, reachability
from hub.storage.database import make_engine

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Finding:
    level: Level
    text: str

    def __str__(self) -> str:
        return f"{self.level}: {self.text}"


def transport_findings(config: Config) -> list[Finding]:
    """Listeners that SPEC §7 allows but that leave a door half open beyond this machine:
    an MLLP listener with server TLS alone authenticates no sender (anyone who reaches the port
    can post an admission for a known INS); an HTTP listener without TLS sends the FHIR token and
    the patients' data in clear. Warnings (`relais run` logs them too), not errors."""
    found: list[Finding] = []
    mllp = config.alerts.mllp
    if mllp.enabled and not is_loopback(mllp.host) and mllp.tls and not mllp.tls_client_ca and not mllp.allowed_peers:
        found.append(Finding("warning", f"[alerts.mllp] listens on {mllp.host}:{mllp.port} beyond this machine with "
                             "TLS but neither tls_client_ca nor allowed_peers: anyone who reaches the port can "
                             "send hospital messages (set tls_client_ca for mutual TLS, or allowed_peers)"))
    http = config.http
    if http.enabled and not is_loopback(http.host) and not http.tls:
        found.append(Finding("warning", f"[http] listens on {http.host}:{http.port} beyond this machine without "
                             "TLS: the FHIR token and the patients' data travel in clear (set tls_cert and "
                             "tls_key, or keep host on loopback behind a TLS proxy)"))
    return found


def offline_findings(config: Config) -> list[Finding]:
    found: list[Finding] = transport_findings(config)
    if config.http.enabled and not config.http.fhir_token:
        found.append(Finding("warning", f"[http] listens on {config.http.host}:{config.http.port} without "
                             "fhir_token: POST /fhir/$process-message answers 401 to every hospital (set "
                             "fhir_token_file, RELAIS_HTTP__FHIR_TOKEN, or [http] enabled = false)"))
    allowed = set(config.matrix.allowed_servers)
    for user in _people(config):
        server = user.split(":", 1)[1]
        if server not in allowed:
            found.append(Finding("warning", f"{user} is on {server}, not in [matrix] allowed_servers: the bot "
                                 "will not invite them"))
    return found


def _people(config: Config) -> list[str]:
    return list(dict.fromkeys((*config.care.case_managers, *config.care.pilots)))


async def online_findings(config: Config) -> list[Finding]:
    found = [await _database(config)]
    async with ClientSession(timeout=ClientTimeout(total=30)) as http:
        homeserver = await _homeserver(http, config)
        found.append(homeserver)
        if homeserver.level == "ok":
            found.extend(await _account(http, config))
    return found


def _sqlite_file_missing(url: str) -> bool:
    """Connecting would create it: a check changes nothing."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and bool(parsed.database) and not Path(str(parsed.database)).exists()


async def _database(config: Config) -> Finding:
    url = config.database.url
    where = reachability.public_url(url)
    if _sqlite_file_missing(url):
        return Finding("warning", f"database {where} does not exist yet: `relais db upgrade -c <config>` "
                       "creates it")
    engine = make_engine(url)
    try:
        await reachability.connect(engine, url)
        current = await migrate.current_revision(engine)
    except RelaisError as exc:
        return Finding("error", str(exc))
    except Exception as exc:
        reason = reachability.transient(exc) or type(exc).__name__
        return Finding("error", f"database {where} unreachable ({reason})")
    finally:
        await engine.dispose()
    head = migrate.head_revision()
    if current == head:
        return Finding("ok", f"database {where}: schema {current} (current)")
    return Finding("warning", f"database {where}: schema {current or 'empty'}, this Relais needs {head}: "
                   "run `relais db upgrade -c <config>` before `relais run`")


async def _homeserver(http: ClientSession, config: Config) -> Finding:
    base = config.matrix.homeserver
    try:
        async with http.get(f"{base}/_matrix/client/versions") as resp:
            data = await resp.json(content_type=None) if resp.status == 200 else None
    except (ClientError, TimeoutError, ValueError) as exc:
        return Finding("error", f"homeserver {base} unreachable ({homeserver_transient(exc) or type(exc).__name__})")
    versions = data.get("versions") if isinstance(data, dict) else None
    if not isinstance(versions, list) or not versions:
        return Finding("error", f"homeserver {base} is not a Matrix homeserver (/_matrix/client/versions)")
    return Finding("ok", f"homeserver {base}: reachable, spec versions {versions[0]} … {versions[-1]}")


async def _call(http: ClientSession, method: str, url: str, token: str | None = None,
                body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as resp:
        try:
            data = await resp.json(content_type=None)
        except ValueError:
            data = None
        return resp.status, data if isinstance(data, dict) else {}


async def _account(http: ClientSession, config: Config) -> list[Finding]:
    matrix = config.matrix
    base = f"{matrix.homeserver}/_matrix/client/v3"
    session = Path(matrix.store_path) / "session.json"
    temporary = False
    if session.exists():
        token: str | None = json.loads(session.read_text(encoding="utf-8")).get("access_token")
        source = f"the stored device ({session})"
    elif matrix.access_token:
        token, source = reveal(matrix.access_token), secret_source(matrix, "access_token")
    else:
        status, data = await _call(http, "POST", f"{base}/login", body={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": matrix.user_id},
            "password": reveal(matrix.password), "initial_device_display_name": "relais check-config"})
        if status != 200:
            return [Finding("error", f"login refused ({data.get('errcode', status)}) for {matrix.user_id} on "
                            f"{matrix.homeserver}: check the password, which comes from "
                            f"{secret_source(matrix, 'password')}")]
        token, source, temporary = str(data["access_token"]), secret_source(matrix, "password"), True
    try:
        found = [await _whoami(http, base, token, matrix.user_id, source, temporary)]
        if found[0].level == "ok":
            allowed = set(matrix.allowed_servers)  # the others are warned about offline
            found.extend([await _person(http, base, token, user) for user in _people(config)
                          if user.split(":", 1)[1] in allowed])
        return found
    finally:
        if temporary:
            await _call(http, "POST", f"{base}/logout", token)


async def _whoami(http: ClientSession, base: str, token: str | None, user_id: str, source: str,
                  temporary: bool) -> Finding:
    status, data = await _call(http, "GET", f"{base}/account/whoami", token)
    if status != 200:
        return Finding("error", f"the credentials from {source} are refused ({data.get('errcode', status)})")
    if data.get("user_id") != user_id:
        return Finding("error", f"the credentials from {source} belong to {data.get('user_id')}, not {user_id}")
    how = "logged in and out again: no device left" if temporary else f"device {data.get('device_id')}"
    return Finding("ok", f"login as {user_id} with {source} ({how})")


async def _person(http: ClientSession, base: str, token: str | None, user: str) -> Finding:
    status, data = await _call(http, "GET", f"{base}/profile/{quote(user, safe='@:')}", token)
    if status == 200:
        return Finding("ok", f"{user}: account exists")
    # Synapse answers M_NOT_FOUND, or M_UNKNOWN "No row found" on some versions.
    if data.get("errcode") == "M_NOT_FOUND" or "no row found" in str(data.get("error", "")).lower():
        return Finding("warning", f"{user}: no such account: the desk waits for it (create the account, or "
                       "fix [care])")
    return Finding("warning", f"{user}: could not check ({data.get('errcode', status)})")
