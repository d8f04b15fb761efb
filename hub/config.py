"""Configuration: TOML validated at start, overridable by RELAIS_* environment variables.

Every section is a frozen pydantic model that rejects unknown keys, so a typo stops the start
with one line naming the key path instead of being silently ignored.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hub.errors import ConfigError

_PLACEHOLDERS = {"", "…", "...", "changeme", "change-me", "secret", "password", "xxx"}
#: A bearer token guards the hospitals' door: shorter than this, it can be guessed (issue 17).
MIN_FHIR_TOKEN = 32


def _refuse_placeholder(value: SecretStr | None) -> SecretStr | None:
    if value is not None and value.get_secret_value().strip().lower() in _PLACEHOLDERS:
        raise ValueError("is a placeholder: set a real secret (or use the *_file key)")
    return value


def _read_secret_file(path: str | None) -> SecretStr | None:
    if path is None:
        return None
    try:
        return SecretStr(Path(path).read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path!r}: {exc.strerror}") from exc


def reveal(secret: SecretStr | None) -> str | None:
    """The secret's text, for the one call that needs it (a login, a token comparison).

    Secrets stay SecretStr everywhere else, so a repr or a log line shows '**********'."""
    return None if secret is None else secret.get_secret_value()


def _check_file(key: str, path: str | None) -> None:
    if path is not None and not Path(path).is_file():
        raise ValueError(f"{key}: {path} is not a readable file")


#: @localpart:server, the server a name or a [IPv6] literal, with an optional port (C-S spec, "Identifiers").
_USER_ID = re.compile(r"^@[a-z0-9._=\-/+]+:([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$")


def user_id_problem(value: str) -> str | None:
    """What keeps `value` from being a Matrix user ID, in words an operator can act on (None when
    it is one). People copy their ID from Element (`@cm:example.org`) or type the name they log
    in with (`cm`, `CM`): say which part is missing."""
    if _USER_ID.match(value):
        return None
    example = "@cm:example.org"
    if not value.startswith("@"):
        return f"{value!r} is not a Matrix user ID: it starts with @ (e.g. {example})"
    if ":" not in value:
        return f"{value!r} names no server: write @localpart:server (e.g. {example})"
    local = value[1:].split(":", 1)[0]
    if local != local.lower() and _USER_ID.match("@" + local.lower() + value[1 + len(local):]):
        return f"{value!r}: Matrix user IDs are lower case (write {'@' + local.lower() + value[1 + len(local):]!r})"
    return f"{value!r} is not a Matrix user ID (e.g. {example})"


def _user_ids(key: str, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        problem = user_id_problem(value)
        if problem:
            raise ValueError(f"{key}: {problem}")
    return values


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses; a name or a wildcard reaches beyond."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or a wildcard ("0.0.0.0", "::", "") reaches beyond the machine


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MatrixConfig(_Section):
    homeserver: str = "http://127.0.0.1:8008"
    user_id: str
    password: SecretStr | None = None
    password_file: str | None = None
    access_token: SecretStr | None = None
    access_token_file: str | None = None
    device_name: str = "Relais"
    store_path: str = "var/store"
    allowed_servers: tuple[str, ...] = ()

    _check_password = field_validator("password", "access_token")(_refuse_placeholder)

    @model_validator(mode="after")
    def _secrets(self) -> MatrixConfig:
        password = self.password or _read_secret_file(self.password_file)
        token = self.access_token or _read_secret_file(self.access_token_file)
        if not password and not token:
            raise ValueError("password: is required (or password_file, or access_token)")
        object.__setattr__(self, "password", password)
        object.__setattr__(self, "access_token", token)
        if not self.allowed_servers:
            object.__setattr__(self, "allowed_servers", (self.server_name,))
        return self

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str) -> str:
        problem = user_id_problem(value)
        if problem:
            raise ValueError(problem.replace("@cm:", "@relais:"))
        return value

    @field_validator("homeserver")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            # Element takes a server name and follows its .well-known delegation; the bot is
            # given the URL itself, so that a change there never moves it in silence.
            raise ValueError(f"{value!r} is not a URL: write the homeserver's client-server URL, "
                             "e.g. https://matrix.example.org (for a server name, "
                             "https://<name>/.well-known/matrix/client gives it as m.homeserver.base_url)")
        value = value.rstrip("/")
        if "/_matrix" in value:
            raise ValueError(f"{value!r}: give the homeserver's base URL, without /_matrix/… "
                             f"(e.g. {value.split('/_matrix', 1)[0]})")
        return value

    @property
    def server_name(self) -> str:
        return self.user_id.split(":", 1)[1]


class DatabaseConfig(_Section):
    url: str = "sqlite+aiosqlite:///var/relais.db"
    # A file holding the whole URL, password included (e.g. /run/credentials/relais/db_url):
    # the password stays out of the TOML and out of the process environment.
    url_file: str | None = None

    @model_validator(mode="after")
    def _url_from_file(self) -> DatabaseConfig:
        from_file = reveal(_read_secret_file(self.url_file))
        if from_file:
            object.__setattr__(self, "url", from_file)
        if not self.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("url: must be sqlite+aiosqlite:///… or postgresql+asyncpg://…")
        problem = _url_problem(self.url)
        if problem:
            raise ValueError(f"url: {problem}")
        return self


def _url_problem(url: str) -> str | None:
    """What is wrong with a database URL that has the right scheme, in words that never show it
    (it may hold a password); None when it can be used."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "cannot be read (e.g. a port that is not a number): write postgresql+asyncpg://user@host:5432/relais"
    if parsed.get_backend_name() == "sqlite":
        if parsed.host or parsed.port or parsed.username:
            # `sqlite+aiosqlite://relais.db` reads relais.db as a host name
            return "a SQLite URL is sqlite+aiosqlite:/// (three slashes) then the file, e.g. sqlite+aiosqlite:///relais.db"
        return None
    if not parsed.database:
        # Without it the server picks the database named after the user (`postgres`, a shared one)
        return "names no database: end it with the database's name, e.g. postgresql+asyncpg://relais@host:5432/relais"
    return None


class CareConfig(_Section):
    language: Literal["fr", "en"] = "fr"
    case_managers: tuple[str, ...] = ()
    pilots: tuple[str, ...] = ()
    reevaluation_days: int = Field(default=182, ge=7, le=730)
    caseload_target: int = Field(default=40, ge=1)
    caseload_max: int = Field(default=60, ge=1)
    intake_per_month: int = Field(default=5, ge=1)
    handover_reminder_days: int = Field(default=3, ge=1)
    # The integrated access point's triage team (SPEC §8, §9), with the case managers.
    coordinators: tuple[str, ...] = ()
    referral_reminder_days: int = Field(default=7, ge=1)
    referral_erase_days: int = Field(default=90, ge=1)
    # The territory's time zone: local dates shown and "today" in every rule (SPEC §5, §8).
    timezone: str = "Europe/Paris"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: write an IANA name such as Europe/Paris "
                             "or Indian/Reunion") from None
        return value

    @model_validator(mode="after")
    def _target_below_max(self) -> CareConfig:
        for key in ("case_managers", "pilots", "coordinators"):
            _user_ids(key, getattr(self, key))
        if self.caseload_target > self.caseload_max:
            raise ValueError("caseload_target: must not exceed caseload_max")
        both = sorted(set(self.case_managers) & set(self.pilots))
        if both:  # a pilot sees counts only (SPEC §2): one person cannot be both
            raise ValueError(f"pilots: {both[0]} is also in case_managers")
        return self


class TlsFiles(_Section):
    """PEM files of a listener's certificate: both or neither (SPEC §7)."""

    tls_cert: str | None = None
    tls_key: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsFiles:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            raise ValueError(f"{missing}: is required with {'tls_cert' if missing == 'tls_key' else 'tls_key'}")
        for key in ("tls_cert", "tls_key"):
            _check_file(key, getattr(self, key))
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


class MllpConfig(TlsFiles):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=2575, ge=0, le=65535)
    # An ADT may embed a document (OBX-5, base64): 8 MiB holds a 6 MB one.
    max_frame_bytes: int = Field(default=8_388_608, ge=1024, le=268_435_456)
    idle_timeout_s: float = Field(default=300.0, gt=0)
    partial_frame_timeout_s: float = Field(default=2.0, gt=0, le=60)
    allowed_peers: tuple[str, ...] = ()
    # Senders connected at once; each may hold up to max_frame_bytes of an open block, so this
    # bounds the listener's memory (interface engines keep one or a few connections each).
    max_connections: int = Field(default=32, ge=1, le=4096)
    # Mutual TLS: senders must present a certificate issued by this CA (PEM).
    tls_client_ca: str | None = None

    @model_validator(mode="after")
    def _guarded(self) -> MllpConfig:
        _check_file("tls_client_ca", self.tls_client_ca)
        if self.tls_client_ca is not None and not self.tls:
            raise ValueError("tls_client_ca: needs tls_cert and tls_key")
        # HL7 carries names, INS and stays: beyond this machine, encrypt it or name the senders.
        if self.enabled and not is_loopback(self.host) and not self.tls and not self.allowed_peers:
            raise ValueError(f"host: {self.host!r} reaches beyond loopback: set tls_cert and tls_key, "
                             "or allowed_peers")
        return self


class AlertsConfig(_Section):
    ins_test_oids: bool = False
    # MSH-11 processing IDs taken (HL7 table 0103: P production, T training, D debugging); any
    # other is answered AR 202. FHIR: a bundle labelled HTEST (test data) needs T or D here.
    processing_ids: tuple[Literal["P", "T", "D"], ...] = Field(default=("P",), min_length=1)
    mllp: MllpConfig = MllpConfig()


class HttpConfig(TlsFiles):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    fhir_token: SecretStr | None = None
    fhir_token_file: str | None = None
    # /metrics lives here, apart from the hospitals' door (loopback unless said otherwise).
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=8091, ge=0, le=65535)

    _check_token = field_validator("fhir_token")(_refuse_placeholder)

    @model_validator(mode="after")
    def _token(self) -> HttpConfig:
        token = self.fhir_token or _read_secret_file(self.fhir_token_file)
        object.__setattr__(self, "fhir_token", token)
        if token is not None and len(token.get_secret_value()) < MIN_FHIR_TOKEN:
            key = "fhir_token" if self.fhir_token_file is None else "fhir_token_file"
            raise ValueError(f"{key}: is shorter than {MIN_FHIR_TOKEN} characters: "
                             "use a long random one (e.g. `openssl rand -hex 32`)")
        return self


class OutboxConfig(_Section):
    """How the outbox retries (per entry, per room); see hub/bots/outbox.py."""

    concurrency: int = Field(default=8, ge=1, le=64)  # rooms served at once
    retry_cap_s: float = Field(default=60.0, ge=1.0)  # longest wait between two tries of one entry
    # An entry still failing this long after it was enqueued, while the homeserver answers, is
    # dead-lettered and its file's referent told (a homeserver outage only delays notices).
    max_age_s: float = Field(default=3600.0, ge=10.0)


class HealthConfig(_Section):
    # /readyz fails while the oldest waiting outbox entry, or the last sync handled, is older.
    stall_after_s: float = Field(default=300.0, ge=1.0)


class EncryptionConfig(_Section):
    trust: Literal["cross_signed", "all"] = "cross_signed"
    # Replace the bot's cross-signing keys held by the homeserver; explicit, for one start.
    reset_cross_signing: bool = False


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="RELAIS_", env_nested_delimiter="__",
        case_sensitive=False,
    )

    matrix: MatrixConfig
    database: DatabaseConfig = DatabaseConfig()
    care: CareConfig = CareConfig()
    alerts: AlertsConfig = AlertsConfig()
    http: HttpConfig = HttpConfig()
    encryption: EncryptionConfig = EncryptionConfig()
    outbox: OutboxConfig = OutboxConfig()
    health: HealthConfig = HealthConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, so a secret never has to sit in the TOML.
        return (env_settings, init_settings)


def secret_source(section: BaseModel, key: str) -> str:
    """Where the secret `key` of a section came from, for an error message (never its value)."""
    name = type(section).__name__.removesuffix("Config").lower()
    env = f"RELAIS_{name.upper()}__{key.upper()}"
    if os.environ.get(env) or os.environ.get(env.lower()):
        return f"the environment variable {env}"
    path = getattr(section, f"{key}_file", None)
    if path:
        return f"the file {path} ([{name}] {key}_file)"
    return f"[{name}] {key} in the configuration file"


def _describe(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(root)"
    message = first["msg"].removeprefix("Value error, ")
    # Model-level checks name their key as "<key>: <problem>".
    head, sep, rest = message.partition(": ")
    if sep and head.isidentifier() and first["type"] == "value_error":
        key, message = f"{key}.{head}", rest
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "is required"
    return ConfigError(key, message)


#: Keys holding a file or folder path, in any section (besides a SQLite [database] url).
_PATH_KEYS = ("_file", "_path", "tls_cert", "tls_key", "tls_client_ca")


def _anchor(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return str(base / value)
    return value


def _anchor_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths written in the file are relative to the file's folder, wherever `relais`
    is started from (a systemd unit, cron, a shell in another folder): the config and what it
    names travel together. Paths from RELAIS_* variables keep the working directory, as any
    path typed in a shell."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = _anchor_paths(value, base)
        elif key.endswith(_PATH_KEYS):
            out[key] = _anchor(value, base)
        else:
            out[key] = value
    database = out.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        url: str = database["url"]
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
            out["database"] = {**database, "url": prefix + _anchor(url.removeprefix(prefix), base)}
    return out


def _misspelt_variable(environ: Mapping[str, str]) -> ConfigError | None:
    """A RELAIS_* variable meant for the configuration that pydantic-settings would skip in
    silence: `RELAIS_DATABASE_URL` (one underscore) leaves the database on SQLite while the
    operator believes it is on PostgreSQL. Variables naming no section (RELAIS_TEST_POSTGRES…)
    belong to others and are left alone; unknown keys within a section are refused by the models."""
    sections = tuple(Config.model_fields)
    for name in sorted(environ):
        if not name.upper().startswith("RELAIS_"):
            continue
        rest = name[len("RELAIS_"):].lower()
        head, nested, _key = rest.partition("__")
        if nested and head not in sections:
            return ConfigError(name, f"names no section of the configuration ({', '.join(sections)})")
        if not nested:
            section = next((s for s in sections if rest.startswith(s + "_")), None)
            if section is not None:
                meant = f"RELAIS_{section.upper()}__{rest.removeprefix(section + '_').upper()}"
                return ConfigError(name, f"is not read: a section and its key are joined by two underscores ({meant})")
    return None


def load_config(path: str | os.PathLike[str] | None, **overrides: Any) -> Config:
    """Read, merge with RELAIS_* variables and validate; raise ConfigError naming the key.
    Relative paths in the file (and in `overrides`) are taken from the file's folder."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise ConfigError("(file)", f"{path} not found") from exc
        except OSError as exc:  # a folder, or a file the user Relais runs as may not read
            raise ConfigError("(file)", f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("(file)", f"{path} is not valid TOML: {exc}") from exc
    data.update(overrides)
    misspelt = _misspelt_variable(os.environ)
    if misspelt is not None:
        raise misspelt
    if path is not None:
        data = _anchor_paths(data, Path(path).resolve().parent)
    try:
        return Config(**data)
    except ValidationError as exc:
        raise _describe(exc) from None
