"""Configuration and CLI: a bad value stops the start with one line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.__main__ import main
from hub.config import load_config
from hub.errors import ConfigError

GOOD = """
[matrix]
user_id = "@relais:example.org"
password = "a-long-real-secret"
[care]
case_managers = ["@cm:example.org"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relais.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid_once_a_secret_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAIS_MATRIX__PASSWORD", "from-the-environment")
    config = load_config(Path(__file__).parents[2] / "config" / "relais.example.toml")
    assert config.matrix.password == "from-the-environment"
    assert config.care.caseload_max == 60 and config.care.language == "fr"


@pytest.mark.parametrize(("extra", "key", "problem"), [
    ("[care]\nlanguage = 'de'", "care.language", "'fr' or 'en'"),
    ("[care]\ncaseload_target = 70", "care.caseload_target", "must not exceed"),
    ("[alerts.mllp]\nport = 70000", "alerts.mllp.port", "less than or equal"),
    ("[matrix2]\nx = 1", "matrix2", "unknown key"),
    ("[database]\nurl = 'mysql://x'", "database.url", "sqlite+aiosqlite"),
    ("[http]\nfhir_token = 'changeme'", "http.fhir_token", "placeholder"),
])
def test_bad_values_name_their_key(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    text = GOOD.replace("[care]\n", "[care_]\n") if extra.startswith("[care]") else GOOD
    text = text.replace('[care_]\ncase_managers = ["@cm:example.org"]\n', "")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text + "\n" + extra + "\n"))
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_missing_password_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[matrix]\nuser_id = "@relais:example.org"\n'))
    assert caught.value.key == "matrix.password"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAIS_ALERTS__MLLP__PORT", "2999")
    monkeypatch.setenv("RELAIS_CARE__LANGUAGE", "en")
    config = load_config(write(tmp_path, GOOD))
    assert config.alerts.mllp.port == 2999 and config.care.language == "en"
    assert config.care.case_managers == ("@cm:example.org",)


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("file-secret\n", encoding="utf-8")
    config = load_config(write(tmp_path, f'[matrix]\nuser_id = "@r:x.org"\npassword_file = "{secret}"\n'))
    assert config.matrix.password == "file-secret"


def test_check_config_cli_names_the_key_and_fails(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n[alerts.mllp]\nprot = 1\n")
    result = subprocess.run([sys.executable, "-m", "hub", "check-config", "-c", str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "alerts.mllp.prot: unknown key" in result.stderr
    assert main(["check-config", "-c", str(write(tmp_path, GOOD))]) == 0


def test_run_refuses_an_unmigrated_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "new.db"
    path = write(tmp_path, GOOD + f'\n[database]\nurl = "sqlite+aiosqlite:///{db}"\n')
    assert main(["run", "-c", str(path)]) == 1
    assert "relais db upgrade" in capsys.readouterr().err
    assert main(["db", "upgrade", "-c", str(path)]) == 0


def test_relative_paths_in_the_file_are_relative_to_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "pw").write_text("file-secret\n", encoding="utf-8")
    (folder / "db").write_text(f"sqlite+aiosqlite:///{tmp_path / 'abs.db'}\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # as a systemd unit or cron would start it
    path = folder / "relais.toml"
    path.write_text('[matrix]\nuser_id = "@r:x.org"\npassword_file = "pw"\nstore_path = "../var/store"\n'
                    '[database]\nurl = "sqlite+aiosqlite:///data/relais.db"\n', encoding="utf-8")
    config = load_config(path)
    assert config.matrix.password == "file-secret"
    assert config.matrix.store_path == str(folder / "../var/store")
    assert config.database.url == f"sqlite+aiosqlite:///{folder / 'data/relais.db'}"
    # A URL file (the database password stays out of the TOML) wins over url.
    path.write_text('[matrix]\nuser_id = "@r:x.org"\npassword = "a-long-real-secret"\n'
                    '[database]\nurl_file = "db"\n', encoding="utf-8")
    assert load_config(path).database.url == f"sqlite+aiosqlite:///{tmp_path / 'abs.db'}"
    # A path given in the environment is the shell's: relative to the working directory.
    monkeypatch.setenv("RELAIS_MATRIX__STORE_PATH", "var/store")
    assert load_config(path).matrix.store_path == "var/store"


def test_offline_check_warns_about_an_http_listener_without_a_fhir_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(write(tmp_path, GOOD))]) == 0
    out = capsys.readouterr().out
    assert "warning: [http] listens on 127.0.0.1:8090 without fhir_token" in out
    assert main(["check-config", "-c", str(write(tmp_path, GOOD + '[http]\nfhir_token = "a-long-real-token"\n'))]) == 0
    assert "warning" not in capsys.readouterr().out


def test_demo_without_the_demo_extra_names_it(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "synapse" else real(name, *a))
    assert main(["demo", "--exit-when-ready"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "relais[demo]" in err and "Traceback" not in err


def test_nio_retry_and_validation_warnings_are_held_back(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from hub.bots.client import quiet_nio_noise

    quiet_nio_noise()
    quiet_nio_noise()  # idempotent
    with caplog.at_level(logging.WARNING):
        logging.getLogger("nio.client.async_client").warning("Timed out, sleeping for %ds", 0)
        logging.getLogger("nio.responses").warning("Error validating response: 'user_id' is a required property")
        logging.getLogger("nio.client.async_client").warning("Got 429 response (ratelimited), sleeping for %dms", 5)
    assert [r.getMessage() for r in caplog.records] == ["Got 429 response (ratelimited), sleeping for 5ms"]


def test_a_secret_s_source_is_named_never_its_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.config import secret_source

    monkeypatch.delenv("RELAIS_MATRIX__PASSWORD", raising=False)
    (tmp_path / "pw").write_text("file-secret\n", encoding="utf-8")
    in_file = load_config(write(tmp_path, GOOD))
    assert secret_source(in_file.matrix, "password") == "[matrix] password in the configuration file"
    from_file = load_config(write(tmp_path, '[matrix]\nuser_id = "@r:x.org"\npassword_file = "pw"\n'))
    assert secret_source(from_file.matrix, "password") == f"the file {tmp_path / 'pw'} ([matrix] password_file)"
    monkeypatch.setenv("RELAIS_MATRIX__PASSWORD", "from-the-environment")
    assert secret_source(load_config(write(tmp_path, GOOD)).matrix, "password") == \
        "the environment variable RELAIS_MATRIX__PASSWORD"
