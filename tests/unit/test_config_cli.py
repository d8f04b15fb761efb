"""Configuration and CLI: a bad value stops the start with one line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.__main__ import main
from hub.config import load_config, reveal
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
    assert reveal(config.matrix.password) == "from-the-environment"
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
    assert reveal(config.matrix.password) == "file-secret"


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
    assert reveal(config.matrix.password) == "file-secret"
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
    assert main(["check-config", "-c", str(write(tmp_path, GOOD + f'[http]\nfhir_token = "{LONG_TOKEN}"\n'))]) == 0
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


# --- secrets and transport (issue 17) ------------------------------------------------------------

LONG_TOKEN = "f3a9c1e7d5b2048a6e9c3f1d7b5a2e08"  # 32 characters


def test_secrets_never_show_in_a_repr_or_a_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = GOOD.replace("a-long-real-secret", "pw-7Hq2ZxK9") + f'\n[http]\nfhir_token = "{LONG_TOKEN}"\n'
    config = load_config(write(tmp_path, text))
    assert reveal(config.http.fhir_token) == LONG_TOKEN and reveal(config.matrix.password) == "pw-7Hq2ZxK9"
    import logging
    logging.getLogger("test").warning("config %s / %r / %s", config, config.http, config.model_dump())
    for shown in (repr(config), str(config), caplog.text, str(config.model_dump())):
        assert LONG_TOKEN not in shown and "pw-7Hq2ZxK9" not in shown


@pytest.mark.parametrize("token", ["short-token", "fhir-token-access-matrix-3b9e", "x" * 31])
def test_check_config_refuses_a_fhir_token_shorter_than_32(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], token: str) -> None:
    path = write(tmp_path, GOOD + f'\n[http]\nfhir_token = "{token}"\n')
    assert main(["check-config", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert "http.fhir_token" in err and "32" in err and token not in err
    secret = tmp_path / "token"
    secret.write_text(token + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD + f'\n[http]\nfhir_token_file = "{secret}"\n'))
    assert caught.value.key == "http.fhir_token_file"
    assert main(["check-config", "-c", str(write(tmp_path, GOOD + f'\n[http]\nfhir_token = "{LONG_TOKEN}"\n'))]) == 0


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "mllp.example.org", ""])
def test_an_mllp_listener_beyond_loopback_needs_tls_or_allowed_peers(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD + f'\n[alerts.mllp]\nhost = "{host}"\n'))
    assert caught.value.key == "alerts.mllp.host"
    assert "tls_cert" in str(caught.value) and "allowed_peers" in str(caught.value)
    guarded = load_config(write(tmp_path, GOOD + f'\n[alerts.mllp]\nhost = "{host}"\nallowed_peers = ["10.1.2.3"]\n'))
    assert guarded.alerts.mllp.host == host
    # Loopback needs neither; a disabled listener binds nothing.
    for ok in ('host = "127.0.0.1"', 'host = "::1"', 'host = "localhost"', f'host = "{host}"\nenabled = false'):
        load_config(write(tmp_path, GOOD + f"\n[alerts.mllp]\n{ok}\n"))


def test_tls_files_come_in_pairs_and_must_exist(tmp_path: Path) -> None:
    pem = tmp_path / "cert.pem"
    pem.write_text("x", encoding="utf-8")
    cases = [
        (f'[alerts.mllp]\ntls_cert = "{pem}"', "alerts.mllp.tls_key"),
        (f'[http]\ntls_key = "{pem}"', "http.tls_cert"),
        (f'[http]\ntls_cert = "{pem}"\ntls_key = "{tmp_path / "missing.pem"}"', "http.tls_key"),
        (f'[alerts.mllp]\ntls_client_ca = "{pem}"', "alerts.mllp.tls_client_ca"),
    ]
    for extra, key in cases:
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, GOOD + "\n" + extra + "\n"))
        assert caught.value.key == key, (extra, caught.value)


def test_doors_half_open_beyond_this_machine_are_warned_about(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """SPEC §7 allows TLS alone on an MLLP listener beyond loopback, and an HTTP listener without
    TLS: both are said, as warnings, with what closes them."""
    pem = tmp_path / "cert.pem"
    pem.write_text("x", encoding="utf-8")
    tls = f'tls_cert = "{pem}"\ntls_key = "{pem}"\n'
    token = f'fhir_token = "{LONG_TOKEN}"\n'
    half_open = GOOD + f'[alerts.mllp]\nhost = "0.0.0.0"\nport = 2575\n{tls}[http]\nhost = "0.0.0.0"\n{token}'
    assert main(["check-config", "-c", str(write(tmp_path, half_open))]) == 0
    out = capsys.readouterr().out
    assert ("warning: [alerts.mllp] listens on 0.0.0.0:2575 beyond this machine with TLS but neither "
            "tls_client_ca nor allowed_peers") in out
    assert "warning: [http] listens on 0.0.0.0:8090 beyond this machine without TLS" in out
    closed = (GOOD + f'[alerts.mllp]\nhost = "0.0.0.0"\n{tls}tls_client_ca = "{pem}"\n'
              f'[http]\nhost = "0.0.0.0"\n{tls}{token}')
    assert main(["check-config", "-c", str(write(tmp_path, closed))]) == 0
    assert "warning" not in capsys.readouterr().out
    peers = GOOD + f'[alerts.mllp]\nhost = "0.0.0.0"\n{tls}allowed_peers = ["10.1.2.3"]\n[http]\n{token}'
    assert main(["check-config", "-c", str(write(tmp_path, peers))]) == 0
    assert "warning" not in capsys.readouterr().out


@pytest.mark.parametrize(("url", "problem"), [
    ("postgresql+asyncpg://relais:pw@127.0.0.1:54x32/relais", "cannot be read"),
    # Without a name the server would use the database named after the user (`postgres`).
    ("postgresql+asyncpg://postgres@127.0.0.1:5432", "names no database"),
    ("postgresql+asyncpg://postgres@127.0.0.1:5432/", "names no database"),
    ("sqlite+aiosqlite://relais.db", "three slashes"),
])
def test_a_database_url_typo_is_one_line_naming_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        url: str, problem: str) -> None:
    monkeypatch.setenv("RELAIS_DATABASE__URL", url)
    path = write(tmp_path, GOOD)
    assert main(["db", "upgrade", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("relais: config: database.url: ") and problem in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and "pw" not in err
    assert list(tmp_path.iterdir()) == [path]  # nothing created


@pytest.mark.parametrize(("name", "problem"), [
    ("RELAIS_DATABASE_URL", "two underscores (RELAIS_DATABASE__URL)"),
    ("RELAIS_MATRIX_PASSWORD", "two underscores (RELAIS_MATRIX__PASSWORD)"),
    ("RELAIS_ALERTS_MLLP__PORT", "names no section"),
    ("RELAIS_MATRX__PASSWORD", "names no section"),
])
def test_a_misspelt_environment_variable_is_refused_not_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, problem: str) -> None:
    monkeypatch.setenv(name, "postgresql+asyncpg://relais@127.0.0.1:5432/relais")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD))
    assert caught.value.key == name and problem in caught.value.problem


def test_other_relais_variables_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAIS_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("RELAIS_BENCH_PYSPY", "1")
    assert load_config(write(tmp_path, GOOD)).care.case_managers == ("@cm:example.org",)


def test_a_config_path_that_cannot_be_read_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `-c /etc/relais/` (the folder); a file the user Relais runs as may not read takes the same path.
    assert main(["check-config", "-c", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == f"relais: config: (file): cannot read {tmp_path}: Is a directory\n"


def test_verbose_logging_shows_statements_never_result_rows() -> None:
    """`relais -v run`: SQLAlchemy logs each statement at INFO (values hidden) and each result row
    at DEBUG — a person's name, a plan's text. Rows stay out whatever -v says."""
    import logging

    from hub.__main__ import configure_logging

    names = ("sqlalchemy.engine", "sqlalchemy", "nio", "aiosqlite")
    kept = {name: logging.getLogger(name).level for name in names}
    root = logging.getLogger().level
    try:
        configure_logging(verbose=True)
        engine = logging.getLogger("sqlalchemy.engine.Engine")
        assert engine.isEnabledFor(logging.INFO) and not engine.isEnabledFor(logging.DEBUG)
        configure_logging(verbose=False)
        assert not engine.isEnabledFor(logging.INFO)
    finally:
        for name, level in kept.items():
            logging.getLogger(name).setLevel(level)
        logging.getLogger().setLevel(root)


def test_verbose_logging_never_shows_the_crypto_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`relais -v run`: nio's crypto store (peewee) logged each statement with its values at DEBUG —
    the bot's Olm account and every Megolm session, pickled under nio's public default key: whoever
    read the log could decrypt every room. peewee stays at WARNING whatever -v says."""
    import logging

    from nio.crypto import OlmAccount
    from nio.store import SqliteStore

    from hub.__main__ import configure_logging

    names = ("sqlalchemy.engine", "sqlalchemy", "nio", "aiosqlite", "peewee")
    kept = {name: logging.getLogger(name).level for name in names}
    root = logging.getLogger().level
    try:
        configure_logging(verbose=True)
        with caplog.at_level(logging.DEBUG):
            SqliteStore("@relais:example.org", "DEVICE", str(tmp_path)).save_account(OlmAccount())
        assert not [r for r in caplog.records if r.name.startswith("peewee")]
        assert "accounts" not in caplog.text
    finally:
        for name, level in kept.items():
            logging.getLogger(name).setLevel(level)
        logging.getLogger().setLevel(root)


@pytest.mark.parametrize(("section", "line", "key", "problem"), [
    ("matrix", 'user_id = "relais:example.org"', "matrix.user_id", "starts with @ (e.g. @relais:example.org)"),
    ("matrix", 'user_id = "@relais"', "matrix.user_id", "names no server"),
    ("matrix", 'user_id = "@Relais:example.org"', "matrix.user_id", "lower case (write '@relais:example.org')"),
    ("care", 'case_managers = ["cm"]', "care.case_managers", "'cm' is not a Matrix user ID"),
    ("care", 'pilots = ["@pilote"]', "care.pilots", "names no server"),
    ("care", 'coordinators = ["@Coord:example.org"]', "care.coordinators", "lower case"),
    ("matrix", 'homeserver = "example.org"', "matrix.homeserver", ".well-known/matrix/client"),
    ("matrix", 'homeserver = "https://matrix.example.org/_matrix/client/"', "matrix.homeserver",
     "without /_matrix/… (e.g. https://matrix.example.org)"),
])
def test_a_person_or_homeserver_written_as_people_know_it_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, line: str, key: str, problem: str) -> None:
    # `case_managers = ["cm"]` was a traceback (IndexError) in check-config; a bot ID without @
    # quoted a regular expression; a homeserver URL ending in /_matrix/client was taken.
    text = GOOD.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    if line.startswith("user_id"):
        text = text.replace('user_id = "@relais:example.org"\n', "")
    if line.startswith("case_managers"):
        text = text.replace('case_managers = ["@cm:example.org"]\n', "")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.key, problem in caught.value.problem) == (key, True), caught.value
    assert main(["check-config", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and key in err


def test_server_names_with_a_port_and_trailing_slashes_are_taken(tmp_path: Path) -> None:
    text = GOOD.replace('user_id = "@relais:example.org"', 'user_id = "@relais:example.org:8448"\n'
                        'homeserver = "https://matrix.example.org/"')
    config = load_config(write(tmp_path, text))
    assert config.matrix.homeserver == "https://matrix.example.org"
    assert config.matrix.server_name == "example.org:8448"
