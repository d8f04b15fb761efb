"""Kinds found after the engine kinds (test_engine_kinds.py): character sets of escapes,
FHIR encounters entered in error, PAM France movement times… Over real MLLP on TCP or real
HTTP where it is about what gets posted, on the parser where it is about reading a field
(invented patients; the messages are files under tests/inbound/messages/)."""

from __future__ import annotations

import logging

import pytest

from hub.inbound.hl7v2 import parse
from tests.inbound.alert_stack import Stack
from tests.inbound.mllp_client import MllpClient
from tests.inbound.test_hospital_feeds import answers, client, message, problems

pytestmark = [pytest.mark.db]
__all__ = ["client"]  # the fixture, shared with test_hospital_feeds

_GERIA = message("a01-geria.hl7")


def _unit(pv1_3_1: bytes, charset: bytes = b"") -> tuple[str, bool]:
    raw = _GERIA.replace(b"GERIA^12", pv1_3_1 + b"^12")
    if charset:
        raw = raw.replace(b"|2.5\r", b"|2.5||||||" + charset + b"\r")
    alert = parse(raw)
    return alert.unit, alert.unreadable


@pytest.mark.parametrize(("charset", "unit"), [
    (b"8859/1", rb"M\XE9\decine"),  # é is the byte E9 in ISO-8859-1
    (b"", rb"M\XE9\decine"),  # no MSH-18: not UTF-8, read as the message bytes are (Latin-1)
    (b"UNICODE UTF-8", rb"M\XC3A9\decine"),  # é is C3 A9 in UTF-8
    (b"UNICODE UTF-8", rb"M\XC3\\XA9\decine"),  # the two bytes of é escaped one by one
    (b"", rb"M\XC3A9\decine"),  # undeclared, and UTF-8
    (b"UNICODE UTF-8", rb"M\XE9\decine"),  # a lying MSH-18: the fallback the message bytes get
    (b"8859/15", rb"M\XE9\decine"),
])
def test_a_hex_escape_is_a_character_of_the_messages_character_set(charset: bytes, unit: bytes) -> None:
    # `M\XE9\decine` was decoded as UTF-8 whatever MSH-18 said: "M\ufffddecine" in the notice.
    assert _unit(unit, charset) == ("Médecine", False)


def test_a_hex_escape_in_iso_8859_15_is_read_in_8859_15() -> None:
    assert _unit(rb"\XA4\ 12", b"8859/15") == ("€ 12", False)
    assert _unit(rb"\XA4\ 12", b"8859/1") == ("¤ 12", False)


def test_a_multi_byte_character_set_run_is_decoded_not_shown_as_its_7_bit_bytes() -> None:
    # `\M2442\` (ISO-IR 87, JIS X 0208) then `\C2842\` (back to ASCII): the JIS bytes between
    # were shown as ASCII ("IB1!") and the switches dropped.
    assert _unit(rb"\M2442\IB1!\C2842\ Nord") == ("病院 Nord", False)
    assert _unit(rb"\M2442\%[") == ("ホ", False)  # the run ends with the value
    assert _unit(rb"Nord\C2D41\ 2") == ("Nord 2", False)  # a single-byte set: the message's charset


@pytest.mark.parametrize(("unit", "shown"), [
    (rb"Cardio\Zx1\ A", "Cardio? A"),  # locally defined: cannot be read
    (rb"Cardio\M2429\AB\C2842\ A", "Cardio? A"),  # a multi-byte set not known here
    (rb"Cardio\M2442\I\C2842\ A", "Cardio? A"),  # half a character
    (rb"Cardio\Q\ A", "Cardio? A"),  # an escape HL7 does not define
])
def test_an_escape_that_cannot_be_decoded_is_shown_as_a_question_mark_and_flagged(unit: bytes, shown: str) -> None:
    assert _unit(unit) == (shown, True)
    assert "\ufffd" not in shown


async def test_a_latin_1_unit_name_with_hex_escapes_is_posted_readable(
        stack: Stack, client: MllpClient, caplog: pytest.LogCaptureFixture) -> None:
    ref = await stack.person("CHU-X:910090")
    raw = message("a01-latin1-hex-escape.hl7")
    assert answers(await client.send(raw)) == [("AA", "E-1")]
    (notice,) = await stack.notices(ref)
    assert notice["params"]["place"] == "CHU-X — Médecine gériatrique"
    assert problems(stack, "undecodable_escape") == 0
    # An escape that cannot be read: still posted, the rest readable, and the operator told
    # (sender and control id, never the value).
    caplog.set_level(logging.INFO, logger="hub.inbound.mllp_server")
    other = await stack.person("CHU-X:910091")
    raw = raw.replace(b"910090", b"910091").replace(b"|E-1|", b"|E-2|").replace(rb"g\XE9\riatrique", rb"\Zq1\ 3")
    assert answers(await client.send(raw)) == [("AA", "E-2")]
    (notice,) = await stack.notices(other)
    assert notice["params"]["place"] == "CHU-X — Médecine ? 3"
    assert problems(stack, "undecodable_escape") == 1
    lines = [r.getMessage() for r in caplog.records if "undecodable_escape" in r.getMessage()]
    assert lines == ["HL7 undecodable_escape from SIH/CHU-X, control id E-2: an escape sequence could not be "
                     "decoded: shown as ?"]
