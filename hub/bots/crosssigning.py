"""Cross-signing for the bot's account, so clients in "only signed devices" mode talk to it.

Element (matrix-js-sdk with the Rust crypto engine) shares room keys only with, and decrypts
only from, devices signed by their owner's self-signing key, itself signed by the owner's
master key. matrix-nio has no cross-signing: this module adds it.

The pure part builds and checks signed JSON as the Matrix spec's appendix says, through the
Matrix team's own `canonicaljson` and `signedjson` (what Synapse itself verifies with), after
checking the value space the spec allows; `ensure_cross_signing` is the one I/O step, run
at start: it keeps the private keys next to the crypto store and never replaces keys the
homeserver holds unless the operator asked for it explicitly.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canonicaljson import encode_canonical_json
from nio import AsyncClient
from signedjson.key import (
    NACL_ED25519,
    decode_signing_key_base64,
    decode_verify_key_bytes,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
)
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey as NaclSigningKey

from hub.errors import MatrixError, TransientError

log = logging.getLogger(__name__)

KEYS_FILE = "cross_signing.json"
_MAX_INT = 2**53 - 1
RESET_HINT = "[encryption] reset_cross_signing = true"

# --- canonical JSON and signatures (Matrix spec, appendices: "Signing JSON") -----------------


def _canonical_value(value: Any) -> Any:
    """Check the value space canonical JSON allows; integral floats (1e10, -0.0) become ints.

    `canonicaljson` encodes whatever Python gives it (1.5, 2**53); the spec allows integers in
    [-(2**53)+1, (2**53)-1] only, so values are checked here first. Returns a deep copy."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -_MAX_INT <= value <= _MAX_INT:
            raise ValueError(f"integer {value} is outside [-(2**53)+1, (2**53)-1]")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{value!r} is not allowed in canonical JSON (integers only)")
        return _canonical_value(int(value))
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"object key {key!r} is not a string")
            out[key] = _canonical_value(item)
        return out
    if isinstance(value, list | tuple):
        return [_canonical_value(item) for item in value]
    raise ValueError(f"{type(value).__name__} cannot be encoded as JSON")


def canonical_json(value: Any) -> bytes:
    """The shortest UTF-8 JSON with keys sorted by code point; integers only (spec appendix).
    Raises ValueError (UnicodeEncodeError for a lone surrogate) for what has no canonical form."""
    return encode_canonical_json(_canonical_value(value))


def b64encode(data: bytes) -> str:
    """Unpadded standard base64."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """Standard base64, padded or not (the spec asks to accept both)."""
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 key pair known by its 32-byte seed; its key id is `ed25519:<public>`."""

    seed: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(generate_signing_key("new")))

    @property
    def public(self) -> str:
        return encode_verify_key_base64(get_verify_key(self._nacl("")))

    @property
    def key_id(self) -> str:
        return f"{NACL_ED25519}:{self.public}"

    def _nacl(self, version: str) -> NaclSigningKey:
        return decode_signing_key_base64(NACL_ED25519, version, b64encode(self.seed))


def sign(obj: Mapping[str, Any], signer_user: str, key: SigningKey) -> dict[str, Any]:
    """A copy of `obj` with `key`'s signature added under signatures[signer_user] (filed as
    `ed25519:<public key>`); `obj` is left untouched. ValueError if it has no canonical form."""
    out: dict[str, Any] = _canonical_value(obj)
    return sign_json(out, signer_user, key._nacl(key.public))


def verify(obj: Mapping[str, Any], signer_user: str, public_key: str, key_name: str | None = None) -> bool:
    """True when `obj` carries a valid signature of `signer_user` by the Ed25519 `public_key`,
    filed under `ed25519:<key_name>` (cross-signing keys are named by their public key, devices
    by their device id)."""
    try:
        signature = (obj.get("signatures") or {}).get(signer_user, {}).get(f"ed25519:{key_name or public_key}")
        if not isinstance(signature, str):
            return False
        key = decode_verify_key_bytes(f"{NACL_ED25519}:{key_name or public_key}", b64decode(public_key))
        verify_signed_json(_canonical_value(obj), signer_user, key)
    except (SignatureVerifyException, ValueError, TypeError, AttributeError):
        return False
    return True


# --- the bot's keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CrossSigningKeys:
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        return cls(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())

    def to_json(self, user_id: str) -> dict[str, Any]:
        return {
            "user_id": user_id,
            "master": b64encode(self.master.seed),
            "self_signing": b64encode(self.self_signing.seed),
            "user_signing": b64encode(self.user_signing.seed),
            # Public keys only to help an operator compare with the homeserver.
            "public": {"master": self.master.public, "self_signing": self.self_signing.public,
                       "user_signing": self.user_signing.public},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CrossSigningKeys:
        return cls(*(SigningKey(b64decode(data[name])) for name in ("master", "self_signing", "user_signing")))


def key_object(user_id: str, usage: str, key: SigningKey) -> dict[str, Any]:
    return {"user_id": user_id, "usage": [usage], "keys": {key.key_id: key.public}}


def device_signing_body(user_id: str, keys: CrossSigningKeys) -> dict[str, Any]:
    """Body of POST /keys/device_signing/upload (without `auth`)."""
    return {
        "master_key": key_object(user_id, "master", keys.master),
        "self_signing_key": sign(key_object(user_id, "self_signing", keys.self_signing), user_id, keys.master),
        "user_signing_key": sign(key_object(user_id, "user_signing", keys.user_signing), user_id, keys.master),
    }


def signatures_body(user_id: str, device_keys: Mapping[str, Any], self_signing: SigningKey) -> dict[str, Any]:
    """Body of POST /keys/signatures/upload: the device keys as the server holds them, plus
    the self-signing key's signature (only the new signature is needed, but Synapse checks the
    object against the stored one)."""
    device = {k: v for k, v in device_keys.items() if k != "unsigned"}
    signed = sign(device, user_id, self_signing)
    signed["signatures"] = {user_id: {self_signing.key_id: signed["signatures"][user_id][self_signing.key_id]}}
    return {user_id: {str(device_keys["device_id"]): signed}}


def single_key(key_obj: Mapping[str, Any] | None, user_id: str, usage: str) -> str | None:
    """The one Ed25519 public key of a cross-signing key object, if it is well formed."""
    if not isinstance(key_obj, Mapping) or key_obj.get("user_id") != user_id:
        return None
    if usage not in (key_obj.get("usage") or ()):
        return None
    keys = key_obj.get("keys") or {}
    if not isinstance(keys, Mapping) or len(keys) != 1:
        return None
    key_id, public = next(iter(keys.items()))
    if not isinstance(public, str) or key_id != f"ed25519:{public}":
        return None
    return public


def self_signing_key(response: Mapping[str, Any], user_id: str) -> str | None:
    """The user's self-signing key from a /keys/query response, if their master key signed it."""
    master = single_key((response.get("master_keys") or {}).get(user_id), user_id, "master")
    ssk_obj = (response.get("self_signing_keys") or {}).get(user_id)
    ssk = single_key(ssk_obj, user_id, "self_signing")
    if master is None or ssk is None or not isinstance(ssk_obj, Mapping) or not verify(ssk_obj, user_id, master):
        return None
    return ssk


def device_is_cross_signed(device: Mapping[str, Any], user_id: str, device_id: str, ssk: str | None) -> str | None:
    """The device's Ed25519 key when the device object is its own (signed by that key) and
    signed by the owner's self-signing key `ssk`; else None."""
    if ssk is None or device.get("user_id") != user_id or device.get("device_id") != device_id:
        return None
    ed25519 = (device.get("keys") or {}).get(f"ed25519:{device_id}")
    if not isinstance(ed25519, str):
        return None
    if not verify(device, user_id, ed25519, device_id) or not verify(device, user_id, ssk):
        return None
    return ed25519


def cross_signed_devices(response: Mapping[str, Any], user_id: str) -> dict[str, str]:
    """device_id → Ed25519 key of each device of `user_id` whose chain master → self-signing →
    device verifies in a /keys/query response."""
    ssk = self_signing_key(response, user_id)
    if ssk is None:
        return {}
    out: dict[str, str] = {}
    for device_id, device in ((response.get("device_keys") or {}).get(user_id) or {}).items():
        ed25519 = device_is_cross_signed(device, user_id, device_id, ssk) if isinstance(device, Mapping) else None
        if ed25519 is not None:
            out[device_id] = ed25519
    return out


# --- talking to the homeserver ------------------------------------------------------------------


class CrossSigningConflict(MatrixError):
    """The homeserver holds cross-signing keys for the bot that this Relais does not have."""

    def __init__(self, message: str) -> None:
        super().__init__("cross-signing", "RELAIS_CROSS_SIGNING_CONFLICT")
        self.args = (message,)


async def matrix_request(api: AsyncClient, method: str, path: str,
                         body: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One authenticated client-server request; (status, JSON body)."""
    headers = {"Authorization": f"Bearer {api.access_token}"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body)
    resp = await api.send(method, path, data, headers=headers)
    try:
        payload = await resp.json(content_type=None)
    finally:
        resp.release()
    return resp.status, payload if isinstance(payload, dict) else {}


def _fail(what: str, status: int, payload: Mapping[str, Any]) -> MatrixError:
    code = payload.get("errcode")
    if status == 429 or status >= 500:
        return TransientError(what, code or str(status), payload.get("retry_after_ms"))
    return MatrixError(what, code or str(status))


def load_keys(path: Path, user_id: str) -> CrossSigningKeys | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("user_id") != user_id:
        raise MatrixError(f"{path} belongs to {data.get('user_id')}", "M_FORBIDDEN")
    return CrossSigningKeys.from_json(data)


def save_keys(path: Path, user_id: str, keys: CrossSigningKeys) -> None:
    """Atomically, readable by Relais only (0600): these keys are the bot's identity."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(keys.to_json(user_id), handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    os.chmod(path, 0o600)


async def query_keys(api: AsyncClient, user_ids: list[str]) -> dict[str, Any]:
    """POST /keys/query for these users (all their devices), raw."""
    status, payload = await matrix_request(api, "POST", "/_matrix/client/v3/keys/query",
                                           {"device_keys": {u: [] for u in user_ids}})
    if status != 200:
        raise _fail("keys_query", status, payload)
    return payload


async def _upload_signing_keys(api: AsyncClient, body: dict[str, Any], password: str | None) -> None:
    """POST /keys/device_signing/upload, following user-interactive auth with the password."""
    path = "/_matrix/client/v3/keys/device_signing/upload"
    status, payload = await matrix_request(api, "POST", path, body)
    if status == 401 and "flows" in payload:
        flows = [flow.get("stages", []) for flow in payload.get("flows", [])]
        if ["m.login.password"] not in flows:
            raise MatrixError("device_signing/upload: the homeserver offers no password flow", "M_FORBIDDEN")
        if not password:
            raise MatrixError("device_signing/upload needs the bot's password ([matrix] password)", "M_FORBIDDEN")
        auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": api.user_id},
                "password": password, "session": payload.get("session")}
        status, payload = await matrix_request(api, "POST", path, {**body, "auth": auth})
    if status != 200:
        raise _fail("device_signing/upload", status, payload)


async def _sign_device(api: AsyncClient, device: Mapping[str, Any], ssk: SigningKey) -> None:
    body = signatures_body(api.user_id, device, ssk)
    status, payload = await matrix_request(api, "POST", "/_matrix/client/v3/keys/signatures/upload", body)
    if status != 200:
        raise _fail("signatures/upload", status, payload)
    if payload.get("failures"):
        # Errors from the server, not user data: key ids and error codes only.
        raise MatrixError(f"signatures/upload refused: {json.dumps(payload['failures'])}", "M_INVALID_SIGNATURE")


def conflict_message(user_id: str, path: Path, server_master: str, local: CrossSigningKeys | None) -> str:
    found = "is missing" if local is None else f"holds another master key ({local.master.public[:8]}…)"
    return (
        f"the homeserver already holds cross-signing keys for {user_id} (master key {server_master[:8]}…) "
        f"but {path} {found}. Relais will not replace them silently: professionals' clients would see the "
        f"bot's identity change. Restore the store from its backup; or, to publish new keys on purpose, add "
        f"`{RESET_HINT}` to the configuration, start once, then remove it (see docs/cross-signing.md)."
    )


async def ensure_cross_signing(api: AsyncClient, store: Path, password: str | None, *,
                               reset: bool = False) -> CrossSigningKeys:
    """Make the bot's device cross-signed: idempotent, safe to run at every start.

    The keys are written to `<store>/cross_signing.json` before they are uploaded, so a crash in
    between leaves keys that the next start uploads, never keys the hub does not hold.
    """
    user_id, device_id = api.user_id, api.device_id
    path = store / KEYS_FILE
    local = load_keys(path, user_id)
    response = await query_keys(api, [user_id])
    server_master = single_key((response.get("master_keys") or {}).get(user_id), user_id, "master")

    if server_master is not None and (local is None or local.master.public != server_master):
        if not reset:
            raise CrossSigningConflict(conflict_message(user_id, path, server_master, local))
        log.warning("resetting the bot's cross-signing keys as configured (reset_cross_signing)")
        local = CrossSigningKeys.generate()
        save_keys(path, user_id, local)
    elif reset:
        log.warning("[encryption] reset_cross_signing is set but nothing needs resetting: remove it")
    if local is None:
        local = CrossSigningKeys.generate()
        save_keys(path, user_id, local)

    if server_master != local.master.public or self_signing_key(response, user_id) != local.self_signing.public:
        await _upload_signing_keys(api, device_signing_body(user_id, local), password)
        log.info("cross-signing keys published (master %s)", local.master.public)
        response = await query_keys(api, [user_id])

    device = ((response.get("device_keys") or {}).get(user_id) or {}).get(device_id)
    if not isinstance(device, Mapping):
        raise MatrixError(f"device {device_id} has no keys on the homeserver", "M_NOT_FOUND")
    own_key = api.olm.account.identity_keys["ed25519"] if api.olm is not None else None
    if (device.get("keys") or {}).get(f"ed25519:{device_id}") != own_key:
        raise MatrixError(f"the homeserver's keys for device {device_id} are not this device's", "M_FORBIDDEN")
    if device_is_cross_signed(device, user_id, device_id, local.self_signing.public) is None:
        await _sign_device(api, device, local.self_signing)
        log.info("device %s signed by the self-signing key", device_id)
    return local
