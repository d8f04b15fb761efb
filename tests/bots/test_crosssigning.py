"""Cross-signing, pure parts: canonical JSON (spec vectors), keys, signatures, the trust chain.

Signatures made by hub.bots.crosssigning are checked here by `independent_verify`, which shares
no code with it: matrix-org's own canonicaljson package and the bare Ed25519 primitive.
"""

from __future__ import annotations

import base64
import copy
import json
import stat
from pathlib import Path
from typing import Any

import canonicaljson
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.bots.crosssigning import (
    CrossSigningKeys,
    SigningKey,
    b64decode,
    b64encode,
    canonical_json,
    conflict_message,
    cross_signed_devices,
    device_signing_body,
    load_keys,
    save_keys,
    self_signing_key,
    sign,
    signatures_body,
    verify,
)
from hub.bots.trust import decide

ALICE = "@alice:example.org"


def independent_verify(obj: dict[str, Any], user_id: str, public_key: str, key_name: str | None = None) -> bool:
    """Check a Matrix signature without the code under test (spec: "Checking for a Signature").
    Cross-signing keys sign as `ed25519:<public key>`, devices as `ed25519:<device id>`."""
    signature = obj.get("signatures", {}).get(user_id, {}).get("ed25519:" + (key_name or public_key))
    if signature is None:
        return False
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    raw_key = base64.b64decode(public_key + "=" * (-len(public_key) % 4))
    raw_sig = base64.b64decode(signature + "=" * (-len(signature) % 4))
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_sig, canonicaljson.encode_canonical_json(stripped))
    except InvalidSignature:
        return False
    return True


# --- canonical JSON: the examples of the spec's appendix, verbatim ----------------------------

SPEC_VECTORS = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        '{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe",'
        ' "three_pids": [{"medium": "email", "address": "john.doe@example.org"},'
        ' {"medium": "msisdn", "address": "123456789"}]}}}',
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":'
        '[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},'
        '"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
]


@pytest.mark.parametrize(("given", "expected"), SPEC_VECTORS)
def test_canonical_json_matches_the_spec_examples(given: str, expected: str) -> None:
    assert canonical_json(json.loads(given)) == expected.encode("utf-8")


def test_canonical_json_escapes_only_what_the_grammar_allows() -> None:
    value = {"s": 'q"b\\\b\f\n\r\t\x00\x0b\x1f\x7f\u2028é😀/'}
    # Short forms where they exist, lowercase \u00XX for other controls, everything else raw.
    expected = '{"s":"q\\"b\\\\\\b\\f\\n\\r\\t\\u0000\\u000b\\u001f\x7f\u2028é😀/"}'
    assert canonical_json(value) == expected.encode("utf-8")
    assert canonical_json(value) == canonicaljson.encode_canonical_json(value)


def test_canonical_json_sorts_by_code_point_not_utf16() -> None:
    # U+FF61 sorts before U+1F600 by code point, after it by UTF-16 code units.
    value = {"\U0001f600": 1, "\uff61": 2, "a": 3, "B": 4}
    assert canonical_json(value) == '{"B":4,"a":3,"｡":2,"😀":1}'.encode()


@pytest.mark.parametrize("bad", [{"x": 1.5}, {"x": 2**53}, {"x": -(2**53)}, {"x": float("nan")},
                                 {"x": float("inf")}, {"x": "\ud800"}, {1: "non-string key"}, {"x": {1, 2}}])
def test_canonical_json_refuses_what_has_no_canonical_form(bad: Any) -> None:
    with pytest.raises((ValueError, UnicodeEncodeError)):
        canonical_json(bad)


def test_canonical_json_keeps_the_integer_bounds() -> None:
    assert canonical_json([2**53 - 1, -(2**53) + 1, True, False]) == b"[9007199254740991,-9007199254740991,true,false]"


# --- base64 and keys -------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "encoded"), [(b"", ""), (b"f", "Zg"), (b"fo", "Zm8"), (b"foo", "Zm9v"),
                                              (b"foob", "Zm9vYg"), (b"fooba", "Zm9vYmE"), (b"foobar", "Zm9vYmFy")])
def test_unpadded_base64_spec_examples(raw: bytes, encoded: str) -> None:
    assert b64encode(raw) == encoded
    assert b64decode(encoded) == raw
    assert b64decode(base64.b64encode(raw).decode()) == raw  # padded input accepted too


def test_signing_key_derives_the_rfc8032_public_key() -> None:
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    key = SigningKey(seed)
    assert key.public == base64.b64encode(public).decode().rstrip("=")
    assert key.key_id == "ed25519:" + key.public


def test_sign_then_verify_independently_and_tampering_is_caught() -> None:
    key = SigningKey.generate()
    obj = {"user_id": ALICE, "n": 42, "nested": {"b": [1, "é"]}, "unsigned": {"age": 7},
           "signatures": {"@other:example.org": {"ed25519:x": "kept"}}}
    signed = sign(obj, ALICE, key)
    assert signed["signatures"]["@other:example.org"] == {"ed25519:x": "kept"}
    assert obj["signatures"] == {"@other:example.org": {"ed25519:x": "kept"}}  # input untouched
    assert independent_verify(signed, ALICE, key.public)
    assert verify(signed, ALICE, key.public)
    # unsigned is not covered; everything else is.
    assert independent_verify({**signed, "unsigned": {"age": 8}}, ALICE, key.public)
    tampered = {**signed, "n": 43}
    assert not independent_verify(tampered, ALICE, key.public)
    assert not verify(tampered, ALICE, key.public)
    assert not verify(signed, "@mallory:example.org", key.public)
    assert not verify(signed, ALICE, SigningKey.generate().public)
    assert not verify({**signed, "signatures": {ALICE: {key.key_id: "not base64!"}}}, ALICE, key.public)


def test_device_signing_body_chains_to_the_master_key() -> None:
    keys = CrossSigningKeys.generate()
    body = device_signing_body(ALICE, keys)
    master = body["master_key"]
    assert master == {"user_id": ALICE, "usage": ["master"], "keys": {keys.master.key_id: keys.master.public}}
    for name, usage, key in (("self_signing_key", "self_signing", keys.self_signing),
                             ("user_signing_key", "user_signing", keys.user_signing)):
        obj = body[name]
        assert obj["usage"] == [usage] and obj["keys"] == {key.key_id: key.public}
        assert independent_verify(obj, ALICE, keys.master.public)
    assert len({keys.master.public, keys.self_signing.public, keys.user_signing.public}) == 3


def _device(user: str, device_id: str, key: SigningKey) -> dict[str, Any]:
    """Device keys signed by the device itself, under its device id as devices do."""
    obj = {"user_id": user, "device_id": device_id, "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
           "keys": {f"curve25519:{device_id}": "c" * 43, f"ed25519:{device_id}": key.public}}
    signature = sign(obj, user, key)["signatures"][user][key.key_id]
    return {**obj, "signatures": {user: {f"ed25519:{device_id}": signature}}}


def test_signatures_body_signs_the_device_as_the_server_holds_it() -> None:
    keys = CrossSigningKeys.generate()
    device_key = SigningKey.generate()
    device = {**_device(ALICE, "DEV", device_key), "unsigned": {"device_display_name": "Relais"}}
    body = signatures_body(ALICE, device, keys.self_signing)
    signed = body[ALICE]["DEV"]
    assert "unsigned" not in signed
    assert list(signed["signatures"][ALICE]) == [keys.self_signing.key_id]
    assert independent_verify(signed, ALICE, keys.self_signing.public)
    # Merged with the device's own signature, the stored object verifies both ways.
    merged = copy.deepcopy(device)
    merged["signatures"][ALICE].update(signed["signatures"][ALICE])
    assert independent_verify(merged, ALICE, device_key.public, "DEV")
    assert independent_verify(merged, ALICE, keys.self_signing.public)


def _query(user: str, keys: CrossSigningKeys, devices: dict[str, dict[str, Any]]) -> dict[str, Any]:
    body = device_signing_body(user, keys)
    return {"master_keys": {user: body["master_key"]}, "self_signing_keys": {user: body["self_signing_key"]},
            "device_keys": {user: devices}}


def _cross_signed(user: str, device_id: str, device_key: SigningKey, ssk: SigningKey) -> dict[str, Any]:
    return sign(_device(user, device_id, device_key), user, ssk)


def test_chain_master_self_signing_device() -> None:
    keys = CrossSigningKeys.generate()
    good, plain, stranger = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    devices = {
        "GOOD": _cross_signed(ALICE, "GOOD", good, keys.self_signing),
        "PLAIN": _device(ALICE, "PLAIN", plain),  # never cross-signed
        "BYUSK": _cross_signed(ALICE, "BYUSK", plain, keys.user_signing),  # wrong key signed it
        # signed by the self-signing key but not by its own key: not a device of this owner's making
        "NOSELF": sign({**_device(ALICE, "NOSELF", stranger), "signatures": {}}, ALICE, keys.self_signing),
        # a signed device object filed under another id
        "MOVED": _cross_signed(ALICE, "GOOD", good, keys.self_signing),
    }
    response = _query(ALICE, keys, devices)
    assert self_signing_key(response, ALICE) == keys.self_signing.public
    assert cross_signed_devices(response, ALICE) == {"GOOD": good.public}

    # A self-signing key the master key did not sign breaks the whole chain.
    forged = copy.deepcopy(response)
    forged["self_signing_keys"][ALICE] = sign({"user_id": ALICE, "usage": ["self_signing"],
                                               "keys": {keys.self_signing.key_id: keys.self_signing.public}},
                                              ALICE, SigningKey.generate())
    assert cross_signed_devices(forged, ALICE) == {}
    # A master key that says it is something else, or belongs to someone else, too.
    for field, value in (("usage", ["self_signing"]), ("user_id", "@bob:example.org")):
        broken = copy.deepcopy(response)
        broken["master_keys"][ALICE][field] = value
        assert cross_signed_devices(broken, ALICE) == {}
    assert cross_signed_devices({"device_keys": {ALICE: devices}}, ALICE) == {}  # no cross-signing at all


def test_policy_blocks_unsigned_devices_and_names_members_left_without_any() -> None:
    keys = CrossSigningKeys.generate()
    bob = "@bob:example.org"
    bot = "@relais:example.org"
    good, plain, bob_key = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    response = _query(ALICE, keys, {"GOOD": _cross_signed(ALICE, "GOOD", good, keys.self_signing),
                                    "PLAIN": _device(ALICE, "PLAIN", plain)})
    response["device_keys"][bob] = {"B1": _device(bob, "B1", bob_key)}
    known = {ALICE: {"GOOD": good.public, "PLAIN": plain.public}, bob: {"B1": bob_key.public},
             bot: {"BOTDEV": "k"}}
    decision = decide(response, [ALICE, bob, bot], bot, known)
    assert decision.blocked == {(ALICE, "PLAIN"), (bob, "B1"), (bot, "BOTDEV")}
    assert decision.unreachable == (bob,)  # the bot itself is never reported
    # nio holding another key under a verified device id: that device is not the verified one.
    swapped = decide(response, [ALICE], bot, {ALICE: {"GOOD": plain.public}})
    assert swapped.blocked == {(ALICE, "GOOD")}


def test_keys_file_round_trip_is_private(tmp_path: Path) -> None:
    keys = CrossSigningKeys.generate()
    path = tmp_path / "cross_signing.json"
    save_keys(path, ALICE, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_keys(path, ALICE)
    assert loaded == keys
    assert json.loads(path.read_text())["public"]["master"] == keys.master.public
    assert load_keys(tmp_path / "missing.json", ALICE) is None
    with pytest.raises(Exception, match="belongs to"):
        load_keys(path, "@someone-else:example.org")


def test_conflict_message_names_the_reset_option(tmp_path: Path) -> None:
    text = conflict_message(ALICE, tmp_path / "cross_signing.json", "MASTERKEY", None)
    assert "reset_cross_signing = true" in text and "[encryption]" in text
    assert "cross_signing.json is missing" in text and "MASTERKE" in text
