"""Start-up as an operator meets it: dependencies that come up after Relais, refused starts.

Real parts only: a private Synapse started after the hub, PostgreSQL reached through a TCP
proxy opened after the hub, the session Synapse refusing a wrong password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from hub.app import Relais
from hub.bots.crosssigning import CrossSigningConflict
from hub.config import DatabaseConfig
from hub.devserver import DevSynapse, free_port
from hub.errors import LoginRefused, RelaisError
from hub.storage import migrate
from hub.storage.database import make_engine
from tests.conftest import POSTGRES_ENV
from tests.hub_harness import BOT_PASSWORD, Hub, new_tag

REPO = Path(__file__).resolve().parents[2]


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _attempts(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "hub.retry" and r.getMessage().startswith(prefix)]


async def _admin_token(synapse: DevSynapse) -> str:
    password = secrets.token_urlsafe(12)
    admin = await synapse.register(f"admin{new_tag()}", password, admin=True)
    async with aiohttp.ClientSession() as http:
        login = await http.post(f"{synapse.url}/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": admin}, "password": password})
        return str((await login.json())["access_token"])


async def _devices(synapse: DevSynapse, token: str, user_id: str) -> set[str]:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{synapse.url}/_synapse/admin/v2/users/{user_id}/devices",
                              headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200, await resp.text()
        return {d["device_id"] for d in (await resp.json())["devices"]}


async def test_start_waits_for_a_homeserver_started_after_it(tmp_path: Path, db_url: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    late = DevSynapse(tmp_path / "late-synapse", port=free_port())
    await late.start()
    hub = Hub(late, tmp_path, db_url, new_tag())
    try:
        await hub.setup(case_managers=())
        await late.stop()  # the reboot order where the homeserver comes up last
        assert hub.config is not None
        relais = Relais(hub.config)
        starting = asyncio.create_task(relais.start(wait_ready=120))
        where = f"homeserver {late.url} unreachable (connection refused)"
        await _until(lambda: len(_attempts(caplog, where)) >= 2, 30, "two logged attempts")
        assert not starting.done()
        await late.start()
        await asyncio.wait_for(starting, 120)
        assert relais.client.synced_once.is_set()
        attempts = _attempts(caplog, where)
        assert "attempt 1, next in 1 s" in attempts[0] and "attempt 2, next in 2 s" in attempts[1]
        await relais.stop()
    finally:
        await hub.close()
        await late.stop()


@contextlib.asynccontextmanager
async def _tcp_proxy(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """Listen on 127.0.0.1:`port` and pass bytes both ways to `target`."""
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    pipes: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        for task in (asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))):
            pipes.add(task)
            task.add_done_callback(pipes.discard)

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for task in list(pipes):
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


@pytest.mark.postgres_only
async def test_start_waits_for_postgresql_then_runs(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await hub.setup(case_managers=())
    assert hub.config is not None
    from sqlalchemy.engine import make_url

    real = make_url(hub.db_url)
    port = free_port()  # closed until the proxy opens it
    proxied = real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    config = hub.config.model_copy(update={"database": DatabaseConfig(url=proxied)})
    relais = Relais(config)
    starting = asyncio.create_task(relais.start(wait_ready=60))
    where = f"database postgresql+asyncpg://127.0.0.1:{port}/{real.database} unreachable (connection refused)"
    await _until(lambda: len(_attempts(caplog, where)) >= 2, 30, "two logged attempts")
    assert not starting.done()
    assert all("postgres@" not in m for m in _attempts(caplog, "database"))  # no user name in the log
    async with _tcp_proxy(port, (real.host or "127.0.0.1", real.port or 5432)):
        await asyncio.wait_for(starting, 60)
        assert await relais.db.ping()
        await relais.stop()


async def test_a_refused_start_leaves_no_device_behind(hub: Hub) -> None:
    await hub.setup(case_managers=())
    assert hub.config is not None
    token = await _admin_token(hub.synapse)
    registration = await _devices(hub.synapse, token, hub.bot)  # the shared-secret registration's
    relais = await hub.start()
    kept = registration | {relais.client.api.device_id}
    await hub.stop()
    assert await _devices(hub.synapse, token, hub.bot) == kept
    # The store is lost: the homeserver holds the bot's cross-signing keys, Relais does not.
    shutil.rmtree(hub.config.matrix.store_path)
    for _ in range(2):
        with pytest.raises(CrossSigningConflict):
            await Relais(hub.config).start()
        assert await _devices(hub.synapse, token, hub.bot) == kept
    assert not (Path(hub.config.matrix.store_path) / "session.json").exists()


async def test_a_wrong_password_is_one_line(hub: Hub, tmp_path: Path) -> None:
    await hub.setup(case_managers=())
    assert hub.config is not None
    config = tmp_path / "wrong.toml"
    config.write_text(f'[matrix]\nhomeserver = "{hub.synapse.url}"\nuser_id = "{hub.bot}"\n'
                      f'store_path = "store-wrong"\n[database]\nurl = "{hub.db_url}"\n'
                      '[http]\nport = 0\n[alerts.mllp]\nport = 0\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RELAIS_MATRIX__PASSWORD": BOT_PASSWORD + "-not"}
    proc = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "hub", "run", "-c", str(config)],
                                   capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    for noise in ("Traceback", "Unclosed", "Error validating", "nio"):
        assert noise not in output, output
    errors = [line for line in output.splitlines() if line.startswith("relais:")]
    assert errors == [f"relais: login refused (M_FORBIDDEN) for {hub.bot} on {hub.synapse.url}: check the "
                      "password, which comes from the environment variable RELAIS_MATRIX__PASSWORD"]
    # Relative to the config file's folder, not to where relais was started.
    assert (tmp_path / "store-wrong").is_dir()


@pytest.mark.db
@pytest.mark.postgres_only
def test_a_missing_database_is_one_line_saying_how_to_create_it(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy.engine import make_url

    from hub.__main__ import main

    missing = f"relais_missing_{secrets.token_hex(4)}"
    url = make_url(os.environ[POSTGRES_ENV]).set(database=missing).render_as_string(hide_password=False)
    config = tmp_path / "relais.toml"
    config.write_text(f'[matrix]\nuser_id = "@relais:localhost"\npassword = "a-long-real-secret"\n'
                      f'[database]\nurl = "{url}"\n', encoding="utf-8")
    for command in (["db", "upgrade"], ["run"]):
        assert main([*command, "-c", str(config)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"'{missing}' does not exist on 127.0.0.1:5432" in err
        assert f"createdb --owner postgres --encoding UTF8 --template template0 {missing}" in err


async def test_a_device_logged_out_by_an_admin_is_one_line_saying_what_to_do(hub: Hub) -> None:
    await hub.setup(case_managers=())
    assert hub.config is not None
    token = await _admin_token(hub.synapse)
    relais = await hub.start()
    device = relais.client.api.device_id
    await hub.stop()
    async with aiohttp.ClientSession() as http:
        gone = await http.delete(f"{hub.synapse.url}/_synapse/admin/v2/users/{hub.bot}/devices/{device}",
                                 headers={"Authorization": f"Bearer {token}"})
        assert gone.status == 200, await gone.text()
    with pytest.raises(LoginRefused) as refused:
        await Relais(hub.config).start()
    session = Path(hub.config.matrix.store_path) / "session.json"
    assert str(refused.value) == (
        f"the device {device} kept in {session} was logged out on {hub.synapse.url} (M_UNKNOWN_TOKEN): "
        f"remove {session} to log in again with a new device; the bot's cross-signing identity in the "
        "store is kept")
    # Doing what it says starts the hub again, with the same cross-signing identity.
    session.unlink()
    again = await hub.start()
    assert again.client.api.device_id != device


def test_sigterm_while_waiting_for_the_homeserver_stops_at_once(tmp_path: Path) -> None:
    import signal

    port = free_port()  # nothing listens there
    config = tmp_path / "relais.toml"
    config.write_text(f'[matrix]\nhomeserver = "http://127.0.0.1:{port}"\nuser_id = "@relais:localhost"\n'
                      'password = "a-long-real-secret"\nstore_path = "store"\n'
                      '[database]\nurl = "sqlite+aiosqlite:///relais.db"\n', encoding="utf-8")
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'relais.db'}")
    asyncio.run(migrate.upgrade(engine))
    asyncio.run(engine.dispose())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "-c", str(config)], env=env,
                                stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while "unreachable (connection refused): attempt 1" not in log.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text(encoding="utf-8")
            time.sleep(0.1)
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - asked < 3  # the backoff wait ends at once
    finally:
        proc.kill()
    text = log.read_text(encoding="utf-8")
    assert "Relais stopped before it was ready" in text and "Traceback" not in text, text


async def test_a_listener_port_in_use_is_one_line_and_leaves_no_device(hub: Hub) -> None:
    busy = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = busy.sockets[0].getsockname()[1]
    try:
        await hub.setup(alerts={"mllp": {"port": port}})
        assert hub.config is not None
        token = await _admin_token(hub.synapse)
        before = await _devices(hub.synapse, token, hub.bot)
        with pytest.raises(RelaisError) as refused:
            await Relais(hub.config).start()
        assert str(refused.value) == f"[alerts.mllp] cannot listen on 127.0.0.1:{port}: Address already in use"
        assert await _devices(hub.synapse, token, hub.bot) == before
        # Refused before anything was done: the case manager's desk was not even asked for (the
        # start used to log in, sync and queue work before it tried the port).
        engine = make_engine(hub.db_url)
        try:
            async with engine.connect() as conn:
                assert (await conn.exec_driver_sql("SELECT count(*) FROM outbox")).scalar_one() == 0
        finally:
            await engine.dispose()
    finally:
        busy.close()


async def test_a_stop_during_the_first_catch_up_keeps_the_device_it_used(hub: Hub) -> None:
    """"Ready" waits for the first sync to go through intake; a stop asked before that ends the
    start gracefully: the new device has already received the first sync's room keys (and the
    outbox may have sent), so it is kept, never logged out as a refused start's device is."""
    await hub.setup(case_managers=())
    assert hub.config is not None
    token = await _admin_token(hub.synapse)
    relais = Relais(hub.config)
    handling = asyncio.Event()
    release = asyncio.Event()

    async def slow_catch_up(_response: object) -> None:
        handling.set()
        await release.wait()

    relais.intake.on_sync = slow_catch_up  # type: ignore[method-assign]
    starting = asyncio.create_task(relais.start())
    try:
        await asyncio.wait_for(handling.wait(), 60)
        assert not starting.done()  # arrived, not handled: not ready yet
        relais._stop_asked.set()
        await asyncio.wait_for(starting, 10)  # returns: no Stopped, no abort
        device = relais.client.api.device_id
        release.set()
        await relais.stop()
    finally:
        release.set()
        if not starting.done():
            starting.cancel()
    assert device in await _devices(hub.synapse, token, hub.bot)


async def test_a_device_logged_out_while_running_stops_the_hub_in_one_line_and_keeps_every_notice(
        hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    """The bot's token revoked on a real Synapse while Relais runs (an admin logging the device out,
    a password change that logs out every device): every send answers M_UNKNOWN_TOKEN. It used to
    be taken as a refusal of the notice itself, so the outbox set each one aside for good, while the
    sync retried forever with 'sync failed (TransientError)'."""
    await hub.setup()
    assert hub.config is not None
    relais = Relais(hub.config)
    running = asyncio.create_task(relais.run_forever())
    await _until(relais.first_pass.is_set, 60, "the first sync")
    desk = await hub.desk("cm")
    async with aiohttp.ClientSession() as http:
        out = await http.post(f"{hub.synapse.url}/_matrix/client/v3/logout",
                              headers={"Authorization": f"Bearer {relais.client.api.access_token}"})
        assert out.status == 200, await out.text()
    async with relais.db.unit() as uow:
        assert await uow.outbox.add("test:after-logout", "invite", None,
                                    {"room_id": desk, "user_id": hub.user("pilote")}, relais.clock.now())
    relais.outbox.wake()
    with pytest.raises(LoginRefused) as refused:
        await asyncio.wait_for(running, 90)
    session = Path(hub.config.matrix.store_path) / "session.json"
    assert str(refused.value).startswith(f"the bot's device {relais.client.api.device_id} was logged out on "
                                         f"{hub.synapse.url} while Relais ran (M_UNKNOWN_TOKEN")
    assert str(refused.value).endswith(f"remove {session} and start Relais again to log in with a new device")
    engine = make_engine(hub.db_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql(
                "SELECT state FROM outbox WHERE key = 'test:after-logout' OR state = 'failed'")).all()
    finally:
        await engine.dispose()
    assert rows == [("pending",)]  # kept for the device logged in next, nothing set aside
    assert not [r for r in caplog.records if r.getMessage().startswith("sync failed")]


async def test_a_second_relais_on_the_same_store_or_database_is_refused_before_touching_anything(
        hub: Hub, tmp_path: Path) -> None:
    """A second `relais run` (a shell while the service runs) used to start in full on the same
    device and database: two syncs, two outboxes, one olm account used by two processes."""
    await hub.setup(case_managers=())
    assert hub.config is not None
    token = await _admin_token(hub.synapse)
    first = await hub.start()
    devices = await _devices(hub.synapse, token, hub.bot)
    second = Relais(hub.config)
    with pytest.raises(RelaisError) as refused:
        await second.start()
    store = hub.config.matrix.store_path
    assert str(refused.value) == (f"another Relais (pid {os.getpid()}) is running with the store {store}: stop it "
                                  "before starting this one (two at once would post every notice twice)")
    assert second.client.nio is None  # never logged in
    assert await _devices(hub.synapse, token, hub.bot) == devices
    # Another store (a copy on another machine, say), the same database: refused too — a SQLite
    # file by its lock file, a PostgreSQL database by an advisory lock its server holds.
    other = Relais(hub.config.model_copy(update={"matrix": hub.config.matrix.model_copy(
        update={"store_path": str(tmp_path / "other-store")})}))
    with pytest.raises(RelaisError, match=r"another Relais .*is running with the database "):
        await other.start()
    assert other.client.nio is None  # never logged in
    # `relais db upgrade` while it runs: one line, nothing migrated.
    config = tmp_path / "relais.toml"
    config.write_text(f'[matrix]\nuser_id = "{hub.bot}"\npassword = "a-long-real-secret"\n'
                      f'store_path = "{store}"\n[database]\nurl = "{hub.db_url}"\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def upgrade() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub", "db", "upgrade", "-c", str(config)],
                              capture_output=True, text=True, env=env, timeout=120)

    proc = await asyncio.to_thread(upgrade)
    assert (proc.returncode, proc.stderr) == (1, (
        f"relais: another Relais (pid {os.getpid()}) is running with the store {store}: stop it before "
        "`relais db upgrade` (two at once would post every notice twice)\n"))
    assert first.client.connected
    await hub.stop()  # the lock goes with the process that held it
    assert (await asyncio.to_thread(upgrade)).returncode == 0
    again = await hub.start()
    assert again.client.api.device_id == first.client.api.device_id


def test_a_store_path_that_cannot_be_written_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hub.__main__ import main

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    config = tmp_path / "relais.toml"
    config.write_text('[matrix]\nuser_id = "@relais:localhost"\npassword = "a-long-real-secret"\n'
                      f'store_path = "{blocker}/store"\n[database]\nurl = "sqlite+aiosqlite:///relais.db"\n'
                      '[http]\nenabled = false\n[alerts.mllp]\nenabled = false\n', encoding="utf-8")
    assert main(["run", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert err == (f"relais: cannot use the store {blocker}/store: Not a directory ({blocker}/store/relais.lock); "
                   "the user Relais runs as must be able to write there\n")


async def test_a_start_refused_at_login_closes_every_listener_it_opened(hub: Hub) -> None:
    # The listeners are bound before the homeserver is awaited: a start refused there (a wrong
    # password) must close them all — the metrics port stayed bound, and a start again in the
    # same process was refused '[http] admin cannot listen'.
    ports = {"port": free_port(), "admin_port": free_port()}
    await hub.setup(case_managers=(), http=ports)
    assert hub.config is not None
    matrix = hub.config.matrix.model_copy(update={"password": SecretStr(BOT_PASSWORD + "-not")})
    config = hub.config.model_copy(update={"matrix": matrix})
    with pytest.raises(LoginRefused):
        await Relais(config).start()
    for port in ports.values():
        with pytest.raises(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
