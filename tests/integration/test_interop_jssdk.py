"""Interop with the SDK inside Element: matrix-js-sdk + Rust crypto (WASM), "exclude insecure
devices" mode (OnlySignedDevicesIsolationMode), against a real Relais on the real Synapse.

The Node side lives in tests/interop/ (package.json and package-lock.json pin the versions).
`npm ci` runs once and is skipped while node_modules matches the lock file. A missing node or
npm FAILS this test: it is the only proof that Element users can talk to the bot.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hub.bots.crosssigning import cross_signed_devices, query_keys
from tests.hub_harness import Hub, is_notice, kind_of
from tests.matrix_helpers import _SEEN, cross_sign, send_text, sync, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

INTEROP = Path(__file__).resolve().parent.parent / "interop"
SCRIPT_TIMEOUT_S = int(os.environ.get("RELAIS_INTEROP_TIMEOUT", "90"))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: the js-sdk interop test needs Node.js ≥ 20 and npm "
                    f"(Debian: apt-get install nodejs npm)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def js_sdk() -> str:
    """The node binary, with tests/interop/node_modules installed from the lock file (cached)."""
    node, npm = _tool("node"), _tool("npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.fail(f"node {version} is too old for the js-sdk interop test (need ≥ 20)", pytrace=False)
    lock = INTEROP / "package-lock.json"
    stamp = INTEROP / "node_modules" / ".relais-lock-sha256"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=INTEROP,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"npm ci in {INTEROP} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
        stamp.write_text(digest)
    return node


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


async def _read_results(proc: asyncio.subprocess.Process, results: list[dict[str, Any]],
                        ready: asyncio.Event) -> None:
    assert proc.stdout is not None
    async for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").strip()
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
            results.append(result)
            if result["step"] in ("ready", "error"):
                ready.set()


async def test_element_sdk_in_only_signed_devices_mode_reads_the_bot_and_is_read(
        hub: Hub, js_sdk: str, tmp_path: Path) -> None:
    await hub.setup(encryption={"trust": "cross_signed"})
    cm = await hub.client("cm")
    await cross_sign(cm)
    password = secrets.token_urlsafe(16)
    pro = await hub.synapse.register(f"pro{hub.tag}", password)
    await hub.start()
    _case_ref, room_id = await hub.open_case()

    env = {**os.environ, "RELAIS_HS": hub.synapse.url, "RELAIS_USER": pro, "RELAIS_PASSWORD": password,
           "RELAIS_BOT": hub.bot, "RELAIS_TIMEOUT_MS": str(SCRIPT_TIMEOUT_S * 1000)}
    stderr_path = tmp_path / "professional.stderr"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(js_sdk, "professional.mjs", cwd=INTEROP, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=stderr)
        results: list[dict[str, Any]] = []
        ready = asyncio.Event()
        reader = asyncio.create_task(_read_results(proc, results, ready))
        try:
            await asyncio.wait_for(ready.wait(), SCRIPT_TIMEOUT_S)
            assert results[-1]["step"] == "ready", (results, _tail(stderr_path))
            # The professional has set up cross-signing: now the case manager adds them.
            await send_text(cm, room_id, f"!team add {pro} nurse")
            await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
            await asyncio.wait_for(proc.wait(), SCRIPT_TIMEOUT_S)
            await reader
        except TimeoutError:
            pytest.fail(f"the js-sdk script did not finish; steps: {results}\n{_tail(stderr_path)}")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            reader.cancel()
    steps = {r["step"]: r for r in results}
    assert proc.returncode == 0 and "error" not in steps, (results, _tail(stderr_path))

    # The professional's device is cross-signed, as the bot sees it from /keys/query.
    signed = cross_signed_devices(await query_keys(cm, [pro]), pro)
    assert steps["ready"]["device_id"] in signed, (steps["ready"], signed)
    assert steps["joined"]["room_id"] == room_id
    # The professional decrypts the bot's notice…
    notice = steps["notice"]
    assert notice["msgtype"] == "m.notice" and notice["kind"] == "team.update", notice
    assert f'href="https://matrix.to/#/{pro}"' in notice["formatted_body"]  # a pill, by name in the body
    # …and the bot decrypts the professional's "!team": its reply lists the team, decrypted again.
    reply = steps["reply"]
    assert reply["kind"] == "command.reply", reply
    assert all(f'href="https://matrix.to/#/{user}"' in reply["formatted_body"] for user in (pro, hub.user("cm")))

    # Only the SDK's join race may have delayed a decryption: never a trust failure.
    reasons = {f.get("reason") for f in steps["done"]["first_attempt_failures"]}
    assert reasons <= {"UNKNOWN_SENDER_DEVICE"}, steps["done"]

    # The bot never had to report the professional as unreachable.
    await sync(cm)
    unreachable = [e for e in _SEEN[cm].get(room_id, []) if kind_of(e) == "encryption.unreachable"]
    assert not unreachable, [e.body for e in unreachable]
