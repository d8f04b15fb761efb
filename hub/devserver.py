"""A private, throw-away Synapse homeserver for the test-suite and ``relais demo``.

The server listens on 127.0.0.1 only, keeps everything (SQLite database, media,
signing key, logs) in one data directory and has its client rate limits relaxed
so that bots and tests may send as fast as they like.

The configuration is written as JSON, which is valid YAML, so that no YAML
library is needed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

log = logging.getLogger(__name__)

CONFIG_NAME = "homeserver.yaml"
LOG_CONFIG_NAME = "log.config"
SERVER_LOG_NAME = "homeserver.log"
STDOUT_LOG_NAME = "synapse-stdout.log"

#: Relaxed limits applied to every client-facing rate limiter.
RELAXED: dict[str, float] = {"per_second": 1000, "burst_count": 10000}

#: Rate-limiter sections (synapse 1.163, ``synapse/config/ratelimiting.py``).
#: Dotted names are nested sections.
RATELIMIT_KEYS: tuple[str, ...] = (
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_admin_redaction",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_joins_per_room",
    "rc_key_requests",
    "rc_3pid_validation",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_presence.per_user",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
)


def free_port() -> int:
    """Ask the OS for a currently unused TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ratelimits() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in RATELIMIT_KEYS:
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = dict(RELAXED)
    return out


def build_log_config(data_dir: Path) -> dict[str, Any]:
    """A Python logging dict-config: WARNING and above to a file in ``data_dir``."""
    return {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                " - %(request)s - %(message)s"
            }
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(data_dir / SERVER_LOG_NAME),
                "encoding": "utf8",
            }
        },
        "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def build_config(
    data_dir: Path,
    port: int,
    server_name: str,
    shared_secret: str,
    macaroon_secret: str | None = None,
    form_secret: str | None = None,
) -> dict[str, Any]:
    """The homeserver configuration as a plain dict (pure: no I/O)."""
    config: dict[str, Any] = {
        "server_name": server_name,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(data_dir / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {
            "name": "sqlite3",
            "args": {"database": str(data_dir / "homeserver.db")},
        },
        "log_config": str(data_dir / LOG_CONFIG_NAME),
        "media_store_path": str(data_dir / "media_store"),
        "signing_key_path": str(data_dir / f"{server_name}.signing.key"),
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": macaroon_secret or secrets.token_urlsafe(32),
        "form_secret": form_secret or secrets.token_urlsafe(32),
        "enable_registration": False,
        "report_stats": False,
        "enable_metrics": False,
        "url_preview_enabled": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "presence": {"enabled": False},
        # Throw-away accounts: cheap password hashing keeps register/login fast.
        "bcrypt_rounds": 4,
    }
    config.update(_ratelimits())
    return config


def write_config(data_dir: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` and its log config into ``data_dir``; return the config path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "media_store").mkdir(exist_ok=True)
    log_config_path = Path(config["log_config"])
    log_config_path.write_text(
        json.dumps(build_log_config(data_dir), indent=2), encoding="utf-8"
    )
    path = data_dir / CONFIG_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2), encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def read_config(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / CONFIG_NAME
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def registration_mac(
    shared_secret: str, nonce: str, user: str, password: str, admin: bool
) -> str:
    """HMAC-SHA1 as expected by ``/_synapse/admin/v1/register``."""
    mac = hmac.new(shared_secret.encode("utf8"), digestmod=hashlib.sha1)
    mac.update(nonce.encode("utf8"))
    mac.update(b"\x00")
    mac.update(user.encode("utf8"))
    mac.update(b"\x00")
    mac.update(password.encode("utf8"))
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class DevSynapse:
    """A Synapse subprocess bound to 127.0.0.1, with its state in ``data_dir``."""

    def __init__(
        self, data_dir: Path, port: int | None = None, server_name: str = "localhost"
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.server_name = server_name
        self._requested_port = port
        self.port: int = 0
        self.url: str = ""
        self._shared_secret = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._config_path = self.data_dir / CONFIG_NAME

    # -- configuration -------------------------------------------------------

    def _prepare(self) -> None:
        """Create or refresh the configuration (blocking; run in a thread)."""
        existing = read_config(self.data_dir)
        if existing is not None and existing.get("server_name") != self.server_name:
            raise RuntimeError(
                f"{self.data_dir} holds a homeserver for "
                f"{existing.get('server_name')!r}, not {self.server_name!r}"
            )
        if self._requested_port is not None:
            port = self._requested_port
        elif existing is not None:
            old = int(existing["listeners"][0]["port"])
            port = old if port_is_free(old) else free_port()
        else:
            port = free_port()
        if existing is not None:
            secret = str(existing["registration_shared_secret"])
            config = build_config(
                self.data_dir,
                port,
                self.server_name,
                secret,
                existing.get("macaroon_secret_key"),
                existing.get("form_secret"),
            )
        else:
            secret = secrets.token_urlsafe(32)
            config = build_config(self.data_dir, port, self.server_name, secret)
        if config != existing:
            write_config(self.data_dir, config)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._shared_secret = secret

    async def _generate_keys(self) -> None:
        key_path = self.data_dir / f"{self.server_name}.signing.key"
        if key_path.exists():
            return
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "synapse.app.homeserver",
            "-c",
            str(self._config_path),
            "--generate-keys",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0 or not key_path.exists():
            raise RuntimeError(
                "synapse --generate-keys failed:\n" + out.decode("utf8", "replace")[-4000:]
            )

    # -- lifecycle -----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, timeout: float = 90.0) -> None:  # noqa: ASYNC109 - public API
        if self.running:
            return
        started = time.monotonic()
        await asyncio.to_thread(self._prepare)
        await self._generate_keys()
        stdout_path = self.data_dir / STDOUT_LOG_NAME
        with stdout_path.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(self._config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(self.data_dir),
            )
        log.info("synapse starting (pid %s) on %s", self._proc.pid, self.url)
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.kill()
            raise
        log.info("synapse ready on %s after %.1fs", self.url, time.monotonic() - started)

    async def _wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        probe = f"{self.url}/_matrix/client/versions"
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=2)
        ) as session:
            while True:
                if self._proc.returncode is not None:
                    raise RuntimeError(
                        f"synapse exited early with code {self._proc.returncode}:\n"
                        + await self._log_tail()
                    )
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(probe) as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"synapse did not answer on {probe} within {timeout:.0f}s:\n"
                        + await self._log_tail()
                    )
                await asyncio.sleep(0.1)

    async def _log_tail(self) -> str:
        def read() -> str:
            return (
                "--- stdout/stderr ---\n"
                + _tail(self.data_dir / STDOUT_LOG_NAME)
                + "\n--- homeserver.log ---\n"
                + _tail(self.data_dir / SERVER_LOG_NAME)
            )

        return await asyncio.to_thread(read)

    async def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                log.warning("synapse (pid %s) ignored SIGTERM, killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self._proc = None

    async def kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        self._proc = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- users ---------------------------------------------------------------

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    async def register(self, localpart: str, password: str, admin: bool = False) -> str:
        """Register ``localpart`` with the shared secret; return its user id.

        Idempotent: an existing user is not an error (its password is left as is).
        """
        if not self.url:
            raise RuntimeError("DevSynapse.start() has not been called")
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30)
        ) as session:
            async with session.get(endpoint) as resp:
                resp.raise_for_status()
                nonce = str((await resp.json())["nonce"])
            body = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": registration_mac(self._shared_secret, nonce, localpart, password, admin),
            }
            async with session.post(endpoint, json=body) as resp:
                data: dict[str, Any] = await resp.json()
                if resp.status == 200:
                    return str(data["user_id"])
                if data.get("errcode") == "M_USER_IN_USE":
                    return self.user_id(localpart)
                raise RuntimeError(f"registration of {localpart!r} failed: {resp.status} {data}")
