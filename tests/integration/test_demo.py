"""`relais demo` end to end: a person logs in with their own client and sees the demo room."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import nio
import pytest

from hub.devserver import free_port
from tests.hub_harness import is_notice, kind_of, shows
from tests.matrix_helpers import accept_invite, cross_sign, send_text, sync, wait_for_event

pytestmark = [pytest.mark.matrix]


async def _start_demo(data: Path, port: int, *extra: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "demo", "--data", str(data), "--port", str(port), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(180):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                raise AssertionError("demo exited early:\n" + "".join(lines[-40:]))
            lines.append(raw.decode())
            if "Relais demo is running" in lines[-1]:
                break
        # the instructions block follows the banner; its last line tells how to stop
        while "Ctrl-C" not in lines[-1]:
            raw = await proc.stdout.readline()
            if not raw:
                raise AssertionError("demo exited early:\n" + "".join(lines[-40:]))
            lines.append(raw.decode())
    return proc, lines


async def test_demo_runs_end_to_end_and_a_person_can_use_it(tmp_path: Path) -> None:
    port = free_port()
    proc, lines = await _start_demo(tmp_path / "demo", port)
    text = "".join(lines)
    try:
        # The banner is not buried under library INFO lines (alembic's plugin list, APScheduler's jobs).
        before_banner = text[:text.index("Relais demo is running")]
        assert " INFO alembic" not in before_banner and " INFO apscheduler" not in before_banner, before_banner
        case_ref = re.search(r"R-\d{4}-\d{4}", text)
        assert case_ref is not None, text
        assert f"http://127.0.0.1:{port}" in text
        assert "@medecin:localhost / relais-demo" in text
        # Everything the demo wrote (Relais' database and crypto store, the homeserver's data)
        # is its owner's only: matrix-nio created its crypto database 0644.
        readable = [str(f.relative_to(tmp_path)) for f in (tmp_path / "demo").rglob("*")
                    if f.is_file() and f.stat().st_mode & 0o077]
        assert readable == [], readable

        store = tmp_path / "gp-store"
        store.mkdir()
        gp = nio.AsyncClient(f"http://127.0.0.1:{port}", "@medecin:localhost", store_path=str(store),
                             config=nio.AsyncClientConfig(encryption_enabled=True))
        try:
            assert isinstance(await gp.login("relais-demo", device_name="smoke"), nio.LoginResponse)
            await gp.keys_upload()
            await cross_sign(gp)  # as Element does at first login: the bot shares keys only then
            await sync(gp, 0)
            room_id = next(iter(gp.invited_rooms))
            await accept_invite(gp, room_id)
            assert gp.rooms[room_id].name == f"Suivi {case_ref.group(0)}"
            await send_text(gp, room_id, "!equipe")
            bot = "@relais:localhost"
            reply = await wait_for_event(gp, room_id, is_notice("command.reply", bot), timeout=60)
            assert shows(reply, "@medecin:localhost") and shows(reply, "@infirmiere:localhost")
            assert kind_of(reply) == "command.reply"
            # The hospital stay is played once someone joined: both alerts are readable by them.
            admission = await wait_for_event(gp, room_id, is_notice("alert.admission", bot), timeout=60)
            discharge = await wait_for_event(gp, room_id, is_notice("alert.discharge", bot), timeout=60)
            assert "hospitalisation le" in admission.body and "CHU-DEMO" in admission.body
            assert "sortie d'hospitalisation le" in discharge.body
        finally:
            await gp.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await proc.wait()
    assert code == 0

    # The data is kept: a second run reuses the same file and room instead of making new ones,
    # also on another port (`--port` changed, or the previous one taken): the bot follows the
    # homeserver instead of waiting for the old port forever.
    port2 = free_port()
    proc2, lines2 = await _start_demo(tmp_path / "demo", port2, "--exit-when-ready")
    async with asyncio.timeout(60):
        assert await proc2.wait() == 0
    assert case_ref.group(0) in "".join(lines2)
    assert f"Homeserver : http://127.0.0.1:{port2}" in "".join(lines2)
    assert "unreachable" not in "".join(lines2)
