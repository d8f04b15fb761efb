"""`relais check-config --online` against the session Synapse and a real database."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import SecretStr

from hub.checks import offline_findings, online_findings
from hub.config import CareConfig, HttpConfig
from hub.storage.reachability import public_url
from tests.hub_harness import Hub
from tests.integration.test_startup import _admin_token, _devices


async def test_online_check_tries_everything_and_leaves_no_device(hub: Hub) -> None:
    await hub.setup()
    assert hub.config is not None
    server = hub.synapse.server_name
    ghost, foreign = f"@ghost{hub.tag}:{server}", f"@cm{hub.tag}:elsewhere.org"
    config = hub.config.model_copy(update={
        "care": CareConfig(case_managers=(hub.user("cm"), ghost, foreign)),
        "http": HttpConfig(port=0)})
    token = await _admin_token(hub.synapse)
    devices = await _devices(hub.synapse, token, hub.bot)

    lines = [str(f) for f in offline_findings(config) + await online_findings(config)]
    assert lines[0].startswith("warning: [http] listens on 127.0.0.1:0 without fhir_token")
    assert lines[1] == (f"warning: {foreign} is on elsewhere.org, not in [matrix] allowed_servers: "
                        "the bot will not invite them")
    assert lines[2].startswith(f"ok: database {public_url(hub.db_url)}: schema ")
    assert lines[3].startswith(f"ok: homeserver {hub.synapse.url}: reachable, spec versions ")
    assert lines[4] == (f"ok: login as {hub.bot} with [matrix] password in the configuration file "
                        "(logged in and out again: no device left)")
    assert lines[5] == f"ok: {hub.user('cm')}: account exists"
    assert lines[6].startswith(f"warning: {ghost}: no such account")
    assert len(lines) == 7
    assert await _devices(hub.synapse, token, hub.bot) == devices

    # Once Relais has run, the stored device's token is used: still no new device.
    await hub.start()
    await hub.stop()
    devices = await _devices(hub.synapse, token, hub.bot)
    lines = [str(f) for f in await online_findings(config)]
    assert lines[2].startswith(f"ok: login as {hub.bot} with the stored device (") and "device " in lines[2]
    assert await _devices(hub.synapse, token, hub.bot) == devices


async def test_online_check_names_a_wrong_password_and_an_unreachable_homeserver(hub: Hub, tmp_path: Path) -> None:
    await hub.setup(case_managers=())
    assert hub.config is not None
    shutil.rmtree(hub.config.matrix.store_path, ignore_errors=True)
    matrix = hub.config.matrix.model_copy(update={"password": SecretStr("nope-nope")})
    wrong = hub.config.model_copy(update={"matrix": matrix})
    lines = [str(f) for f in await online_findings(wrong)]
    assert lines[2] == (f"error: login refused (M_FORBIDDEN) for {hub.bot} on {hub.synapse.url}: check the "
                        "password, which comes from [matrix] password in the configuration file")
    away = wrong.model_copy(update={"matrix": wrong.matrix.model_copy(update={"homeserver": "http://127.0.0.1:1"})})
    lines = [str(f) for f in await online_findings(away)]
    assert lines[1] == "error: homeserver http://127.0.0.1:1 unreachable (connection refused)"
    assert len(lines) == 2
