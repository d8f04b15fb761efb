"""Hospital feeds as interface engines really send them (issue 15), over real MLLP on TCP.

The messages are files under tests/inbound/messages/ (invented patients). What would be
posted is read from the outbox; tests/integration/test_hospital_feeds.py follows the same
files into a Matrix room.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.config import MllpConfig
from hub.domain.alerts import AlertEvent
from hub.domain.settings import Setting
from hub.inbound.fhir_notify import parse_bundle
from hub.inbound.mllp import frame
from hub.storage.database import Database
from tests.inbound.alert_stack import Stack, make_stack
from tests.inbound.mllp_client import MllpClient, err_code
from tests.samples_path import SAMPLES

pytestmark = [pytest.mark.db]

MESSAGES = Path(__file__).parent / "messages"
PATIENT_DATA = ("NOM", "Prenom", "19400101", "910031", "910028")


def message(name: str, *, ends: bytes = b"\r") -> bytes:
    """A message file, segments ended by `ends` (the files are written with LF to be read)."""
    return (MESSAGES / name).read_bytes().replace(b"\n", ends)


def answers(block: bytes) -> list[tuple[str, str]]:
    """(MSA-1, MSA-2) of every ACK in an answer block, in order."""
    text = block.decode("utf-8", "replace")
    return [(seg.split("|")[1], seg.split("|")[2]) for seg in re.split(r"[\r\n]", text) if seg.startswith("MSA|")]


def segments(block: bytes, name: str) -> list[list[str]]:
    text = block.decode("utf-8", "replace")
    return [seg.split("|") for seg in text.split("\r") if seg.startswith(name + "|")]


def problems(stack: Stack, reason: str) -> float:
    return stack.metrics.registry.get_sample_value("relais_hl7_problems_total", {"reason": reason}) or 0.0


def outcome(stack: Stack, name: str) -> float:
    return stack.metrics.registry.get_sample_value(
        "relais_alerts_total", {"source": "hl7", "outcome": name}) or 0.0


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[MllpClient]:
    c = await MllpClient.connect(stack.port)
    try:
        yield c
    finally:
        await c.close()


async def test_several_messages_in_one_block_are_each_kept_processed_and_answered_in_order(
        stack: Stack, client: MllpClient) -> None:
    ref = await stack.person("CHU-X:910028")
    block = await client.send(message("a01-a03-one-block.hl7"))
    # One answer block, one ACK per message, in the order sent: the discharge is not lost.
    assert answers(block) == [("AA", "C28-1"), ("AA", "C28-2")]
    assert await stack.messages() == 2
    kinds = [n["message"] for n in await stack.notices(ref)]
    assert kinds == ["alert.admission", "alert.discharge"]
    assert (await stack.setting(ref))[0] is Setting.HOME
    # The same block again with LF or CRLF line ends: the same two messages, acknowledged, not posted twice.
    for ends in (b"\n", b"\r\n"):
        assert answers(await client.send(message("a01-a03-one-block.hl7", ends=ends))) == [
            ("AA", "C28-1"), ("AA", "C28-2")]
    assert await stack.messages() == 2
    assert len(await stack.notices(ref)) == 2  # one message per hospital event (issue 22)


async def test_batches_with_and_without_fhs_get_a_batch_of_acks(stack: Stack, client: MllpClient) -> None:
    with_fhs = await stack.person("CHU-X:910029")
    bhs_only = await stack.person("CHU-X:910030")
    block = await client.send(message("batch-fhs.hl7"))
    assert block.startswith(b"FHS|^~\\&|RELAIS|DAC|SIH|CHU-X|")
    fhs, bhs = segments(block, "FHS")[0], segments(block, "BHS")[0]
    assert fhs[11] == "F-77" and bhs[11] == "B-77"  # FHS-12 / BHS-12 name the batch answered
    assert answers(block) == [("AA", "B77-1"), ("AA", "B77-2")]
    assert segments(block, "BTS") == [["BTS", "2"]] and segments(block, "FTS") == [["FTS", "1"]]
    assert [n["message"] for n in await stack.notices(with_fhs)] == [
        "alert.admission", "alert.discharge"]

    block = await client.send(message("batch-bhs-only.hl7", ends=b"\r\n"))
    assert block.startswith(b"BHS|") and not segments(block, "FHS") and not segments(block, "FTS")
    # A31 is not acted on (AA, not kept); the third message has no PID (AE): each answered.
    assert answers(block) == [("AA", "B78-1"), ("AA", "B78-2"), ("AE", "B78-3")]
    assert segments(block, "BTS") == [["BTS", "3"]]
    assert [n["message"] for n in await stack.notices(bhs_only)] == ["alert.admission_emergency"]
    assert await stack.messages() == 3  # B77-1, B77-2, B78-1
    assert outcome(stack, "not_acted") == 1 and problems(stack, "no_pid") == 1


async def test_a_batch_file_of_two_batches_is_answered_batch_by_batch(stack: Stack, client: MllpClient) -> None:
    ref = await stack.person("CHU-X:910033")
    block = await client.send(message("batch-file-two-batches.hl7"))
    assert [seg[11] for seg in segments(block, "FHS")] == ["F-80"]
    assert [seg[11] for seg in segments(block, "BHS")] == ["B-80", "B-81"]
    assert answers(block) == [("AA", "B80-1"), ("AR", "B81-1"), ("AA", "B81-2")]
    assert segments(block, "BTS") == [["BTS", "1"], ["BTS", "2"]] and segments(block, "FTS") == [["FTS", "2"]]
    assert [n["message"] for n in await stack.notices(ref)] == [
        "alert.admission", "alert.transfer"]


async def test_absent_or_null_information_is_never_a_change_nor_shown(stack: Stack, client: MllpClient) -> None:
    ref = await stack.person("CHU-X:910031")
    for name in ("a01-geria.hl7", "a08-no-location.hl7", "a08-null-location.hl7"):
        assert answers(await client.send(message(name)))[0][0] == "AA", name
    notices = await stack.notices(ref)
    assert [n["message"] for n in notices] == ["alert.admission"]  # the A08s stay silent
    assert notices[0]["params"]["place"] == "CHU-X — GERIA"
    # A unit without its facility: moved within the same establishment.
    assert answers(await client.send(message("a08-unit-only.hl7"))) == [("AA", "L-4")]
    moved = (await stack.notices(ref))[-1]
    assert moved["message"] == "alert.location" and moved["params"]["place"] == "CHU-X — CARDIO"

    nulls = await stack.person("CHU-X:910032")
    assert answers(await client.send(message("a01-null-location.hl7"))) == [("AA", "N-1")]
    admission = (await stack.notices(nulls))[0]
    assert admission["params"]["place"] == "CHU-X"  # the sender (MSH-4), never '""'
    assert '\\"\\"' not in json.dumps(await stack.notices(nulls)) and '""' not in admission["params"]["place"]


@pytest.mark.parametrize("trigger", ["A28", "A31", "A47", "A60", "Z80", "A14", "A37"])
async def test_adt_events_not_acted_on_are_acknowledged_counted_and_not_kept(
        stack: Stack, client: MllpClient, trigger: str) -> None:
    await stack.person("CHU-X:910031")
    raw = message("a28-add-person.hl7").replace(b"A28", trigger.encode())
    assert answers(await client.send(raw)) == [("AA", "U-28")]
    assert answers(await client.send(message("a47-change-identifier.hl7"))) == [("AA", "U-47")]
    assert await stack.messages() == 0
    assert outcome(stack, "not_acted") == 2


async def test_refusals_are_logged_once_without_patient_data_and_counted(
        stack: Stack, client: MllpClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hub.inbound.mllp_server")
    ack = await client.send(message("orm-o01.hl7"))
    assert answers(ack) == [("AR", "U-ORM")] and err_code(ack) == "200"
    no_pid = message("a01-geria.hl7").replace(b"PID|1||910031^^^CHU-X^PI||NOM^Prenom||19400101|F\r", b"")
    ack = await client.send(no_pid.replace(b"|L-1|", b"|L-NOPID|"))
    assert answers(ack) == [("AE", "L-NOPID")] and err_code(ack) == "100"
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2
    assert "unsupported_type" in lines[0] and "SIH/CHU-X" in lines[0] and "U-ORM" in lines[0]
    assert "no_pid" in lines[1] and "L-NOPID" in lines[1]
    assert not any(word in line for line in lines for word in PATIENT_DATA)
    assert problems(stack, "unsupported_type") == 1 and problems(stack, "no_pid") == 1
    assert await stack.messages() == 0


async def test_framing_noise_every_message_answered_once_in_order(database: Database) -> None:
    # A long idle answer time: everything here must be answered without waiting for it.
    s = await make_stack(database, partial_frame_timeout_s=30)
    client = await MllpClient.connect(s.port)
    try:
        base = message("a28-add-person.hl7")

        def msg(cid: str) -> bytes:
            return base.replace(b"|U-28|", f"|{cid}|".encode())

        stream = b"".join([
            b"\x00\r\nHELLO\r\n", frame(msg("N1")),                    # stray bytes, then a clean frame
            b"\x0b\x0b" + msg("N2") + b"\x1c\x0d",                     # a repeated start byte
            b"\x0b" + msg("N3") + b"\x1c",                             # end byte without its CR
            b"\r\n\r\ntext between frames\r\n",                        # text between frames
            msg("N4") + b"\x1c\x0d",                                   # the start byte lost
            b"\x0b" + msg("N5").replace(b"\r", b"\n") + b"\x1c\x1c\x0d\x0d",  # LF, repeated end bytes
            b"\x0b\x1c\x0d", b"\x0b   \r\n\x1c\x0d",                  # empty blocks: not messages
            frame(b"HELLO THERE\r"),                                  # a block of text: not a message
            b"\x0b\xef\xbb\xbf\r\n" + msg("N6") + b"\x1c\x0d",             # a BOM and a blank line first
        ])
        await client.write(stream)
        got = [answers(await client.ack(timeout=10))[0] for _ in range(6)]
        assert got == [("AA", f"N{i}") for i in range(1, 7)]
        # Nothing more was answered: the next answer is the next message's.
        assert answers(await client.send(msg("N7"))) == [("AA", "N7")]
    finally:
        await client.close()
        await s.server.stop()
    assert problems(s, "idle_timeout") == 0


async def test_a_block_without_its_end_is_answered_after_a_short_silence(
        database: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hub.inbound.mllp_server")
    s = await make_stack(database, partial_frame_timeout_s=0.3)
    ref = await s.person("CHU-X:910031")
    client = await MllpClient.connect(s.port)
    try:
        await client.write(b"\x0b" + message("a01-geria.hl7"))  # no 0x1C ever comes
        assert answers(await client.ack(timeout=10)) == [("AA", "L-1")]
        assert answers(await client.send(message("a08-unit-only.hl7"))) == [("AA", "L-4")]
    finally:
        await client.close()
        await s.server.stop()
    assert [n["message"] for n in await s.notices(ref)] == ["alert.admission", "alert.location"]
    assert problems(s, "idle_timeout") == 1
    line = next(r.getMessage() for r in caplog.records if "idle_timeout" in r.getMessage())
    assert "SIH/CHU-X" in line and "L-1" in line and "910031" not in line


async def test_an_embedded_document_passes_with_the_default_limit_and_a_larger_block_gets_ae(
        database: Database) -> None:
    limit = MllpConfig().max_frame_bytes
    s = await make_stack(database, max_frame_bytes=limit)
    ref = await s.person("CHU-X:910031")
    document = b"JVBERi0xLjQK" * (1_500_000 // 12)  # 1.5 MB of base64 PDF in OBX-5
    obx = b"OBX|1|ED|PDF^Compte rendu||^AP^PDF^Base64^" + document + b"||||||F\r"
    client = await MllpClient.connect(s.port)
    try:
        assert answers(await client.send(message("a01-geria.hl7") + obx)) == [("AA", "L-1")]
        too_big = message("a08-unit-only.hl7") + b"OBX|1|ED|PDF||^AP^PDF^Base64^" + b"A" * limit + b"\r"
        ack = await client.send(too_big)
        assert answers(ack) == [("AE", "L-4")] and err_code(ack) == "207" and b"frame too large" in ack
        assert answers(await client.send(message("a08-null-location.hl7"))) == [("AA", "L-3")]
    finally:
        await client.close()
        await s.server.stop()
    assert [n["message"] for n in await s.notices(ref)] == ["alert.admission"]
    assert problems(s, "too_large") == 1


async def test_a_resend_with_a_regenerated_msh_7_posts_nothing_twice(stack: Stack, client: MllpClient) -> None:
    ref = await stack.person("CHU-X:910031")
    first = message("a01-geria.hl7")
    resent = first.replace(b"|20261127214228||ADT^A01", b"|20261128063000||ADT^A01")
    assert resent != first
    assert answers(await client.send(first)) == [("AA", "L-1")]
    assert answers(await client.send(resent)) == [("AA", "L-1")]
    assert await stack.messages() == 1
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]


async def test_a_cancellation_arriving_before_its_event_keeps_that_event_from_standing(
        stack: Stack, client: MllpClient) -> None:
    ref = await stack.person("CHU-Y:910041")
    assert answers(await client.send(message("pam-a11-first.hl7", ends=b"\n"))) == [("AA", "K-2")]
    assert answers(await client.send(message("pam-a01-after-its-cancel.hl7", ends=b"\n"))) == [("AA", "K-1")]
    notices = await stack.notices(ref)
    assert [n["message"] for n in notices] == ["alert.cancelled_unknown"]  # and no admission after it
    assert (await stack.setting(ref))[0] is Setting.HOME
    async with stack.db.unit() as uow:
        records = await uow.alerts.alerts_of(ref)
    admission = next(r for r in records if r.event is AlertEvent.admission)
    assert admission.cancelled and admission.cancelled_by == records[0].id


async def test_a_z99_moving_the_current_movement_is_a_location_change(stack: Stack, client: MllpClient) -> None:
    ref = await stack.person("CHU-Y:910040")
    for name, cid in (("pam-a01-movement.hl7", "Z-1"), ("pam-z99-same-movement-new-unit.hl7", "Z-2"),
                      ("pam-z99-other-movement.hl7", "Z-3")):
        assert answers(await client.send(message(name))) == [("AA", cid)], name
    notices = await stack.notices(ref)
    # The Z99 of another (older) movement changes nothing where the person is now.
    assert [n["message"] for n in notices] == ["alert.admission", "alert.location"]
    assert notices[1]["params"]["place"] == "CHU-Y — CARDIO"


@pytest.mark.parametrize("authority", ["urn:oid:1.2.250.1.999.4.4", "1.2.250.1.999.4.4", "URN:OID:1.2.250.1.999.4.4"])
async def test_an_oid_authority_in_any_spelling_matches_pid_3_4_universal_id(
        stack: Stack, client: MllpClient, authority: str) -> None:
    ref = await stack.person(f"{authority}:F8001")
    assert answers(await client.send(message("a01-oid-authority.hl7"))) == [("AA", "O-1")]
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]


async def test_a_store_failure_is_ar_and_its_log_lines_carry_no_patient_data(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    unmigrated = Database(db_url)  # no tables: every write fails
    s = await make_stack(unmigrated)
    client = await MllpClient.connect(s.port)
    try:
        ack = await client.send(message("a01-geria.hl7"))
        assert answers(ack) == [("AR", "L-1")] and err_code(ack) == "207"
    finally:
        await client.close()
        await s.server.stop()
        await unmigrated.close()
    line = next(r.getMessage() for r in caplog.records if "store_failed" in r.getMessage())
    assert "SIH/CHU-X" in line and "L-1" in line
    assert not any(word in caplog.text for word in PATIENT_DATA)


async def test_a_parser_fault_on_one_message_costs_the_others_nothing(
        stack: Stack, client: MllpClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Fault injection: the parser fails on the first message of a block with an unexpected error."""
    ref = await stack.person("CHU-X:910028")
    real = stack.service.parsers["hl7"]

    def failing(raw: bytes) -> object:
        if b"|C28-1|" in raw:
            raise ValueError("NOM Prenom 19400101")  # what a careless exception could quote
        return real(raw)

    monkeypatch.setitem(stack.service.parsers, "hl7", failing)  # type: ignore[arg-type]
    block = await client.send(message("a01-a03-one-block.hl7"))
    assert answers(block) == [("AE", "C28-1"), ("AA", "C28-2")]
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.discharge"]
    assert problems(stack, "unreadable") == 1 and "ValueError" in caplog.text
    assert not any(word in caplog.text for word in PATIENT_DATA)


@pytest.mark.parametrize(("typed", "system"), [
    ("urn:oid:1.2.250.1.999.4.4:F8001", "urn:oid:1.2.250.1.999.4.4"),
    ("1.2.250.1.999.4.4:F8001", "urn:oid:1.2.250.1.999.4.4"),
    ("https://chu-x.example.fr/fhir/sid/ipp:F8001", "https://chu-x.example.fr/fhir/sid/ipp"),
])
async def test_a_fhir_identifier_system_matches_the_authority_as_typed(stack: Stack, typed: str, system: str) -> None:
    ref = await stack.person(typed)
    bundle = json.loads((SAMPLES / "fhir" / "admit-notification-message-bundle-01.json").read_text(encoding="utf-8"))
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"] = [{"system": system, "value": "F8001"}]
    raw = json.dumps(bundle).encode()
    received = await stack.service.receive(parse_bundle(raw), raw)
    assert received.outcome == "posted"
    assert (await stack.notices(ref))[0]["message"].startswith("alert.admission")
