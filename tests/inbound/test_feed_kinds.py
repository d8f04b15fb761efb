"""Kinds found after the engine kinds (test_engine_kinds.py): character sets of escapes,
FHIR encounters entered in error, PAM France movement times… Over real MLLP on TCP or real
HTTP where it is about what gets posted, on the parser where it is about reading a field
(invented patients; the messages are files under tests/inbound/messages/)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub.domain.alerts import AlertEvent
from hub.domain.settings import Setting
from hub.inbound.fhir_notify import NotActed, parse_bundle
from tests.inbound.alert_stack import Stack
from tests.inbound.alert_stack import parse_on_test_hub as parse
from tests.inbound.mllp_client import MllpClient
from tests.inbound.test_engine_kinds import fhir
from tests.inbound.test_hospital_feeds import answers, client, message, problems
from tests.samples_path import SAMPLES

pytestmark = [pytest.mark.db]
__all__ = ["client", "fhir"]  # the fixtures, shared with test_hospital_feeds and test_engine_kinds
Post = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]

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


def _bundle(name: str, *, status: str | None = None, bundle_id: str | None = None,
            mrn: str = "F8201") -> dict[str, Any]:
    """A Da Vinci sample whose Patient carries `mrn` under urn:oid:1.2.250.1.999.4.4, its
    Encounter.status set to `status`."""
    bundle = json.loads((SAMPLES / "fhir" / f"{name}-notification-message-bundle-01.json").read_text(encoding="utf-8"))
    bundle = copy.deepcopy(bundle)
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Patient":
            res["identifier"] = [{"system": "urn:oid:1.2.250.1.999.4.4", "value": mrn}]
        if res["resourceType"] == "Encounter" and status is not None:
            res["status"] = status
    if bundle_id is not None:
        bundle["id"] = bundle_id
    return bundle


@pytest.mark.parametrize(("name", "status", "event"), [
    ("admit", "entered-in-error", AlertEvent.cancel_admission),
    ("admit", "cancelled", AlertEvent.cancel_admission),
    ("discharge", "entered-in-error", AlertEvent.cancel_discharge),
    ("admit", "in-progress", AlertEvent.admission),
    ("discharge", "finished", AlertEvent.discharge),
])
def test_a_fhir_encounter_entered_in_error_or_cancelled_retracts_its_event(
        name: str, status: str, event: AlertEvent) -> None:
    alert = parse_bundle(_bundle(name, status=status))
    assert alert.event is event
    assert alert.movement_id.startswith("fhir:")  # the encounter, to find what it retracts


@pytest.mark.parametrize("name", ["admit", "discharge", "transfer"])
def test_a_fhir_encounter_not_begun_is_not_acted_on(name: str) -> None:
    # `planned` was read as the event done (an admission posted for a scheduled stay):
    # tests/inbound/test_fhir_door_kinds.py holds what the sender and the team see.
    bundle = _bundle("admit", status="planned")
    bundle["entry"][0]["resource"]["eventCoding"]["code"] = f"notification-{name}"
    with pytest.raises(NotActed):
        parse_bundle(bundle)


async def test_a_fhir_admission_entered_in_error_cancels_what_was_posted(stack: Stack, fhir: Post) -> None:
    # An admit notification whose Encounter.status was `entered-in-error` (or `cancelled`) was
    # posted as an admission, the person moved to the emergency setting: a false admission.
    ref = await stack.person("urn:oid:1.2.250.1.999.4.4:F8201")
    status, _ = await fhir(_bundle("admit", bundle_id="n-1"))
    assert status == 200
    assert (await stack.setting(ref))[0] is Setting.EMERGENCY
    status, _ = await fhir(_bundle("admit", status="entered-in-error", bundle_id="n-2"))
    assert status == 200
    notices = await stack.notices(ref)
    assert [n["message"] for n in notices] == [
        "alert.admission_emergency", "alert.cancelled_original", "alert.cancelled"]
    assert notices[1]["replaces"] == notices[0]["key"]
    assert notices[2]["params"]["what"] == {"key": "alert.what.admission"}
    assert (await stack.setting(ref))[0] is Setting.HOME  # the setting before the false admission


async def test_a_fhir_admission_entered_in_error_never_seen_posts_no_admission(stack: Stack, fhir: Post) -> None:
    ref = await stack.person("urn:oid:1.2.250.1.999.4.4:F8202")
    status, _ = await fhir(_bundle("admit", status="cancelled", bundle_id="n-3", mrn="F8202"))
    assert status == 200
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.cancelled_unknown"]
    assert (await stack.setting(ref))[0] is Setting.HOME
    # The admission itself, arriving late (a sender's queue re-ordered): recorded cancelled, not posted.
    status, _ = await fhir(_bundle("admit", bundle_id="n-4", mrn="F8202"))
    assert status == 200
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.cancelled_unknown"]
    assert (await stack.setting(ref))[0] is Setting.HOME


async def test_a_fhir_discharge_entered_in_error_cancels_the_discharge_not_the_admission(
        stack: Stack, fhir: Post) -> None:
    ref = await stack.person("urn:oid:1.2.250.1.999.4.4:F8203")
    admit = _bundle("admit", bundle_id="n-5", mrn="F8203")
    discharge = _bundle("discharge", bundle_id="n-6", mrn="F8203")
    # One encounter: the discharge sample's Encounter is the admission's.
    encounter = next(e["resource"] for e in admit["entry"] if e["resource"]["resourceType"] == "Encounter")
    for entry in discharge["entry"]:
        if entry["resource"]["resourceType"] == "Encounter":
            entry["resource"]["identifier"] = encounter["identifier"]
    retraction = copy.deepcopy(discharge)
    retraction["id"] = "n-7"
    for entry in retraction["entry"]:
        if entry["resource"]["resourceType"] == "Encounter":
            entry["resource"]["status"] = "entered-in-error"
    for bundle in (admit, discharge, retraction):
        assert (await fhir(bundle))[0] == 200
    notices = await stack.notices(ref)
    assert [n["message"] for n in notices] == [
        "alert.admission_emergency", "alert.discharge", "alert.cancelled_original", "alert.cancelled"]
    assert notices[2]["replaces"] == notices[1]["key"]
    assert notices[3]["params"]["what"] == {"key": "alert.what.discharge"}
    assert (await stack.setting(ref))[0] is Setting.EMERGENCY  # back in hospital, as before the discharge


def test_in_ihe_pam_the_movement_time_zbe_2_wins_over_evn_6() -> None:
    # The ANS example: EVN-6 = EVN-2 = MSH-7 = 11:11:54 (when it was keyed in), ZBE-2 = 11:00,
    # the movement's date/time. EVN-6 won: the admission was told 11 minutes late.
    sample = (SAMPLES / "hl7v2" / "pam-fr-admission.er7").read_bytes()
    assert b"EVN||20240306111154||||20240306111154" in sample and b"|20240306110000|" in sample
    assert parse(sample).event_time.isoformat() == "2024-03-06T11:00:00+01:00"
    # Without ZBE (no PAM movement), EVN-6 is when the event occurred.
    no_zbe = b"\r".join(s for s in sample.replace(b"\n", b"\r").split(b"\r") if not s.startswith(b"ZBE"))
    assert parse(no_zbe).event_time.isoformat() == "2024-03-06T11:11:54+01:00"


async def test_a_pam_movement_is_posted_at_its_zbe_2_time(stack: Stack, client: MllpClient) -> None:
    ref = await stack.person("CHU-Y:910040")
    raw = message("pam-a01-movement.hl7").replace(b"EVN||20261204080000|||||CHU-Y",
                                                  b"EVN||20261204081100||||20261204081100|CHU-Y")
    assert answers(await client.send(raw)) == [("AA", "Z-1")]
    (notice,) = await stack.notices(ref)
    assert notice["params"]["when"] == "2026-12-04T08:00:00+01:00"


async def test_an_a40_with_two_pid_mrg_pairs_renames_each_record_to_its_own_survivor(
        stack: Stack, client: MllpClient) -> None:
    # Every MRG was paired with the first PID: the file known as 910201 (merged into 910200)
    # was renamed 910100, another patient's record, and got that patient's alerts from then on.
    first, second = await stack.person("CHU-X:910101"), await stack.person("CHU-X:910201")
    assert answers(await client.send(message("a40-two-merges.hl7"))) == [("AA", "M-2")]
    admission = message("a01-geria.hl7")
    for number, control in ((b"910100", b"L-100"), (b"910200", b"L-200")):
        raw = admission.replace(b"910031", number).replace(b"|L-1|", b"|" + control + b"|")
        assert answers(await client.send(raw)) == [("AA", control.decode())]
    assert [n["message"] for n in await stack.notices(first)] == ["alert.admission"]
    assert [n["message"] for n in await stack.notices(second)] == ["alert.admission"]
    alert = parse(message("a40-two-merges.hl7"))
    assert [(old.value, new.value) for old, new in alert.merges] == [("910101", "910100"), ("910201", "910200")]


_DISCHARGE = message("a03-keyed-next-morning.hl7")  # discharged 2026-11-27 17:00 (PV1-45)


def _death(pid_29: bytes, pid_30: bytes) -> Setting | None:
    from hub.domain.transitions import setting_after

    fields = b"|" * 21 + pid_29 + b"|" + pid_30  # PID-29 and PID-30, after PID-8
    raw = _DISCHARGE.replace(b"||19400101|F\r", b"||19400101|F" + fields + b"\r")
    return setting_after(parse(raw))


@pytest.mark.parametrize(("pid_29", "pid_30", "setting"), [
    (b"", b"Y", Setting.OTHER),  # PID-30 says the person died: never "back home"
    (b"202611271540", b"Y", Setting.OTHER),  # died the day of the discharge
    (b"20261105", b"y", Setting.OTHER),  # in the stay's last 30 days
    (b"20080825111630+0115", b"Y", Setting.HOME),  # the GHH samples: a date years before the stay
    (b"20261220", b"Y", Setting.HOME),  # after the discharge: not this stay's end
    (b"", b"N", Setting.HOME),
    (b"202611271540", b"", Setting.HOME),  # a date without the indicator is not a death
])
def test_a_discharge_at_the_person_s_death_is_never_a_return_home(pid_29: bytes, pid_30: bytes,
                                                                 setting: Setting) -> None:
    assert _death(pid_29, pid_30) is setting


@pytest.mark.parametrize("zbe_2", [b"2024", b"20240306", b"2024030611", b"garbage", b""])
def test_a_zbe_2_short_of_the_minute_gives_way_to_evn_6(zbe_2: bytes) -> None:
    # A ZBE-2 cut to its date put the ANS example's admission at midnight (year alone: 1 January)
    # ahead of EVN-6's full time.
    sample = (SAMPLES / "hl7v2" / "pam-fr-admission.er7").read_bytes()
    assert parse(sample.replace(b"|20240306110000|", b"|" + zbe_2 + b"|")).event_time.isoformat() == (
        "2024-03-06T11:11:54+01:00")
    assert parse(sample.replace(b"|20240306110000|", b"|202403061100|")).event_time.isoformat() == (
        "2024-03-06T11:00:00+01:00")
