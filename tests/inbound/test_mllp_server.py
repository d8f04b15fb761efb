"""The MLLP listener on a real socket and a real database: ACKs, framing, dedupe, ordering.

No homeserver here: what would be posted is read from the outbox. The integration tests
(tests/integration/test_alerts.py) follow the same messages into Matrix rooms.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub.domain import alert_decision
from hub.domain.alerts import AlertEvent
from hub.domain.settings import Setting
from hub.inbound.mllp import frame
from hub.services.alerts import RECOVER_INTERVAL_S, RECOVER_SETTLE_S, UNMATCHED_COUNTER, AlertService
from hub.storage.database import Database
from hub.storage.models_alerts import AlertRow, InboundMessageRow
from tests.inbound.alert_stack import MAX_FRAME, PARSERS, Stack, make_stack
from tests.inbound.alert_stack import parse_on_test_hub as parse
from tests.inbound.mllp_client import GHH, MllpClient, err_code, msa, sample

pytestmark = [pytest.mark.db]

def with_time(raw: bytes, stamp: str) -> bytes:
    """The GHH samples carry their event time in EVN-6: move it."""
    return re.sub(rb"\|20210817151943\.4\+0200\|", f"|{stamp}|".encode(), raw)


def with_control_id(raw: bytes, control_id: str) -> bytes:
    return raw.replace(b"|MSG00001|", f"|{control_id}|".encode(), 1)


async def test_every_sample_is_acknowledged_kept_once_and_turned_into_the_right_notices(stack: Stack) -> None:
    ghh = await stack.person("test1:PATID1234")
    pam = await stack.person("CHU-X:000003")
    merged = await stack.person("BCBS:56789")
    client = await MllpClient.connect(stack.port)
    try:
        for name in GHH:
            assert msa(await client.send(sample(name))) == ("AA", "MSG00001"), name
        assert msa(await client.send(sample("pam-fr-admission.er7"))) == ("AA", "3975")
        assert msa(await client.send(sample("ADT-A40-01.hl7"))) == ("AA", "8919-40")
        kept = await stack.messages()
        outbox = await stack.notices(ghh)
        # A resend (same sender, control id and content) is acknowledged again and changes nothing.
        for name in (*GHH, "pam-fr-admission.er7"):
            assert msa(await client.send(sample(name))) == ("AA", sample(name).split(b"|")[9].decode())
        assert await stack.messages() == kept == 9
        assert await stack.notices(ghh) == outbox
    finally:
        await client.close()

    kinds = [(n["kind"], n["message"]) for n in outbox if not n["replaces"]]
    assert kinds == [
        # One message per hospital event: a move's checklist travels in the alert (issue 22).
        ("alert.admission", "alert.admission"),  # A01
        ("alert.transfer", "alert.transfer"),  # A02: still in hospital, no move
        ("alert.discharge", "alert.discharge"),  # A03
        ("alert.admission", "alert.admission"),  # A04
        # A08: same location, silent
        ("alert.cancelled", "alert.cancelled"),  # A11 cancels the A04 admission
        ("alert.cancelled", "alert.cancelled"),  # A13 cancels the A03 discharge
    ]
    first = outbox[0]
    assert first["params"]["place"] == "HOMERTON UNIVER — HUH AE OMU"
    assert first["mentions"] == ["@cm:test", "@gp:test"]
    assert [i["key"] for i in first["params"]["todo"]["params"]["checklist"]] == [
        "checklist.services_suspended", "checklist.hospital_contact", "checklist.plan_summary"]
    assert outbox[1]["params"]["todo"] is None  # the transfer moves nobody: nothing to do
    discharged = next(n for n in outbox if n["message"] == "alert.discharge")
    discharge_checklist = [i["key"] for i in discharged["params"]["todo"]["params"]["checklist"]]
    assert "checklist.discharge_letter" in discharge_checklist and "checklist.reevaluation" in discharge_checklist
    edits = [n for n in outbox if n["replaces"]]
    admission_a04 = next(n for n in outbox if n["key"].startswith("alert:") and n["message"] == "alert.admission"
                         and n is not first)
    discharge = next(n for n in outbox if n["message"] == "alert.discharge")
    assert [e["replaces"] for e in edits] == [admission_a04["key"], discharge["key"]]
    assert all(e["message"] == "alert.cancelled_original" for e in edits)
    cancelled = [n for n in outbox if n["kind"] == "alert.cancelled"]
    assert [c["params"]["restored"]["params"]["setting"] for c in cancelled] == ["home", "hospital"]
    # A11 then A13 undid A04 and A03: back in hospital, as after A01/A02.
    assert (await stack.setting(ghh))[0] is Setting.HOSPITAL

    pam_notices = await stack.notices(pam)
    assert [n["kind"] for n in pam_notices] == ["alert.admission"] and pam_notices[0]["params"]["todo"]
    assert pam_notices[0]["params"]["place"] == "CHU-X — Chir V"
    async with stack.db.unit() as uow:
        rekeyed = await uow.persons.get(merged)
    assert rekeyed is not None and [i.label() for i in rekeyed.identifiers] == ["BCBS:12345"]
    assert await stack.notices(merged) == []


async def test_line_endings_charsets_and_how_the_stream_is_cut_do_not_matter(stack: Stack) -> None:
    ref = await stack.person("CHU-X:000003")
    pam = sample("pam-fr-admission.er7")
    variants = {
        "LF": pam,
        "CR": pam.replace(b"\n", b"\r"),
        "CRLF": pam.replace(b"\n", b"\r\n"),
        "ISO-8859-1": pam.decode().encode("latin-1").replace(b"UNICODE UTF-8", b"8859/1"),
    }
    client = await MllpClient.connect(stack.port)
    try:
        for index, (label, raw) in enumerate(variants.items()):
            raw = raw.replace(b"|3975|", f"|V{index}|".encode())
            ack = await client.send(raw)
            encoding = "latin-1" if label == "ISO-8859-1" else "utf-8"
            assert msa(ack, encoding) == ("AA", f"V{index}"), label
            if label == "ISO-8859-1":
                assert b"|8859/1" in ack  # the ACK answers in the sender's charset
        # Two frames in one write, then one frame in three writes (the end block split too).
        a, b = (frame(pam.replace(b"|3975|", f"|{cid}|".encode())) for cid in ("TWO-1", "TWO-2"))
        await client.write(a + b)
        assert [msa(await client.ack())[1] for _ in range(2)] == ["TWO-1", "TWO-2"]
        split = frame(pam.replace(b"|3975|", b"|SPLIT|"))
        for piece in (split[:7], split[7:-1], split[-1:]):
            await client.write(piece)
        assert msa(await client.ack()) == ("AA", "SPLIT")
    finally:
        await client.close()
    assert await stack.messages() == 7
    # The same admission, seven times under seven control ids: the first moved the person,
    # the others (same event time) are news without a move.
    kinds = [n["kind"] for n in await stack.notices(ref)]
    with_checklist = [n for n in await stack.notices(ref) if n["params"].get("todo")]
    assert kinds.count("alert.admission") == 7 and len(with_checklist) == 1


async def test_malformed_frames_get_ae_or_ar_and_the_connection_keeps_working(stack: Stack) -> None:
    await stack.person("test1:PATID1234")
    a01 = sample("ADT-A01-01.hl7")
    client = await MllpClient.connect(stack.port)
    try:
        ack = await client.send(b"PID|1||123^^^X^PI\rPV1|1|I")
        assert msa(ack) == ("AE", "") and err_code(ack) == "100"  # no MSH
        ack = await client.send(a01.replace(b"|2.8|", b"|2.9|"))
        assert msa(ack) == ("AR", "MSG00001") and err_code(ack) == "203"  # wrong version
        no_id = re.sub(rb"\nPID\|1\|[^|]*\|[^|]*\|", b"\nPID|1|||", a01)
        ack = await client.send(no_id)
        assert msa(ack) == ("AE", "MSG00001") and err_code(ack) == "101"  # no identifier
        ack = await client.send(a01.replace(b"ADT^A01^ADT_A01", b"ORU^R01^ORU_R01"))
        assert msa(ack) == ("AR", "MSG00001") and err_code(ack) == "200"
        # Truncated: a new start block before the end block; the next frame is still read.
        await client.write(b"\x0b" + with_control_id(a01, "CUT")[:300] + frame(with_control_id(a01, "AFTER-CUT")))
        assert msa(await client.ack()) == ("AE", "CUT")
        assert msa(await client.ack()) == ("AA", "AFTER-CUT")
        # Oversized: answered once, its tail skipped, the next frame read.
        big = with_control_id(a01, "BIG") + b"\nNTE|1||" + b"x" * MAX_FRAME
        ack = await client.send(big)
        assert msa(ack) == ("AE", "BIG")
        # An ACK sent to us is never answered: the next answer is for the next message.
        ours = await client.send(with_control_id(a01, "AFTER-BIG"))
        assert msa(ours) == ("AA", "AFTER-BIG")
        await client.write(frame(ours))
        assert msa(await client.send(with_control_id(a01, "AFTER-ACK"))) == ("AA", "AFTER-ACK")
    finally:
        await client.close()
    assert await stack.messages() == 3  # only the three good messages were kept
    assert stack.metrics.registry.get_sample_value(
        "relais_alerts_total", {"source": "hl7", "outcome": "ack_ignored"}) == 1


async def test_a_pam_cancellation_targets_its_movement_by_zbe_1(stack: Stack) -> None:
    ref = await stack.person("CHU-X:000003")
    pam = sample("pam-fr-admission.er7")
    first = pam  # movement 001
    second = pam.replace(b"|3975|", b"|3976|").replace(b"ZBE|001^", b"ZBE|002^")
    cancel = (pam.replace(b"|3975|", b"|3977|").replace(b"ADT^A01^ADT_A01", b"ADT^A11^ADT_A09")
              .replace(b"||INSERT|", b"||CANCEL|"))
    zbe_only = second.replace(b"|3976|", b"|3978|").replace(b"||INSERT|", b"||CANCEL|")  # A01 + CANCEL
    client = await MllpClient.connect(stack.port)
    try:
        for raw in (first, second, cancel, zbe_only):
            assert msa(await client.send(raw))[0] == "AA"
    finally:
        await client.close()
    notices = await stack.notices(ref)
    admissions = [n["key"] for n in notices if n["message"] == "alert.admission"]
    edits = [n["replaces"] for n in notices if n["replaces"]]
    # ZBE-1 names the movement: the A11 cancels 001 (not the latest admission), the
    # A01 + ZBE-4=CANCEL cancels 002.
    assert edits == admissions[:2] and len(admissions) == 2
    assert [n["kind"] for n in notices].count("alert.cancelled") == 2
    async with stack.db.unit() as uow:
        records = await uow.alerts.alerts_of(ref)
    # No admission left standing, the A01 + CANCEL itself included.
    assert [r.cancelled for r in records if r.event is AlertEvent.admission] == [True, True, True]
    assert (await stack.setting(ref))[0] is Setting.HOME


async def test_a_processed_message_keeps_its_key_but_not_its_content(stack: Stack) -> None:
    await stack.person("test1:PATID1234")
    client = await MllpClient.connect(stack.port)
    try:
        assert msa(await client.send(sample("ADT-A01-01.hl7"))) == ("AA", "MSG00001")
        # A resend is still recognised (AA, nothing new) without the content being kept.
        assert msa(await client.send(sample("ADT-A01-01.hl7"))) == ("AA", "MSG00001")
    finally:
        await client.close()
    async with stack.db.unit() as uow:
        rows = (await uow.session.execute(select(InboundMessageRow.state, InboundMessageRow.raw))).all()
    assert rows == [("processed", None)]


async def test_unknown_person_keeps_nothing_but_a_count(stack: Stack) -> None:
    client = await MllpClient.connect(stack.port)
    try:
        assert msa(await client.send(sample("ADT-A01-01.hl7"))) == ("AA", "MSG00001")
    finally:
        await client.close()
    async with stack.db.unit() as uow:
        assert await uow.alerts.count_messages() == 0
        assert await uow.kv.get(UNMATCHED_COUNTER) == "1"
        # Only its key (sender, control id, digest), to know a resend: no content.
        rows = await uow.session.execute(select(InboundMessageRow.state, InboundMessageRow.raw))
        assert rows.all() == [("unmatched", None)]
    assert stack.metrics.registry.get_sample_value("relais_alerts_unknown_person_total") == 1


async def test_an_older_event_arriving_late_does_not_overwrite_a_newer_setting(stack: Stack) -> None:
    ref = await stack.person("test1:PATID1234")
    discharge = with_control_id(with_time(sample("ADT-A03-01.hl7"), "20261120100000+0100"), "D1")
    admission = with_control_id(with_time(sample("ADT-A01-01.hl7"), "20261110100000+0100"), "A1")
    client = await MllpClient.connect(stack.port)
    try:
        assert msa(await client.send(discharge))[0] == "AA"
        assert msa(await client.send(admission))[0] == "AA"
    finally:
        await client.close()
    setting, back = await stack.setting(ref)
    assert setting is Setting.HOME and str(back) == "2026-11-20"
    notices = await stack.notices(ref)
    # The discharge is a return from hospital even though the admission had not reached us;
    # the late admission informs without moving anyone.
    assert [n["kind"] for n in notices] == ["alert.discharge", "alert.admission"]
    back_home = [i["key"] for i in notices[0]["params"]["todo"]["params"]["checklist"]]
    assert "checklist.discharge_letter" in back_home and "checklist.reevaluation" in back_home
    assert notices[1]["params"]["late"] == {"key": "alert.late"} and notices[1]["params"]["todo"] is None
    assert notices[0]["params"]["late"] is None


async def test_times_without_an_offset_are_the_territorys_local_time(database: Database) -> None:
    # La Réunion (UTC+4): the discharge says 10:00 without an offset, i.e. 06:00 UTC; the
    # admission says 07:00 UTC explicitly, so it is the newer event. Read as Paris time (09:00
    # UTC), the discharge would wrongly win: the person shown at home, the admission "late".
    stack = await make_stack(database, timezone="Indian/Reunion")
    try:
        ref = await stack.person("test1:PATID1234")
        discharge = with_control_id(with_time(sample("ADT-A03-01.hl7"), "20261120100000"), "D1")
        admission = with_control_id(with_time(sample("ADT-A01-01.hl7"), "20261120070000+0000"), "A1")
        client = await MllpClient.connect(stack.port)
        try:
            assert msa(await client.send(discharge))[0] == "AA"
            assert msa(await client.send(admission))[0] == "AA"
        finally:
            await client.close()
        setting, _back = await stack.setting(ref)
        assert setting is Setting.HOSPITAL
        notices = await stack.notices(ref)
        assert [n["kind"] for n in notices] == ["alert.discharge", "alert.admission"]
        assert notices[1]["params"]["late"] is None
    finally:
        await stack.server.stop()


async def test_acknowledged_but_unprocessed_messages_are_finished_once_at_the_next_start(stack: Stack) -> None:
    ref = await stack.person("test1:PATID1234")
    raw = sample("ADT-A01-01.hl7")
    received = await stack.service.keep(parse(raw), raw)  # ACKed, then the process died
    assert received.pending and not received.duplicate
    assert await stack.notices(ref) == []
    again = AlertService(stack.db, stack.clock, PARSERS, ins_test_oids=False)
    assert await again.recover() == 1
    assert await again.recover() == 0
    assert [n["kind"] for n in await stack.notices(ref)] == ["alert.admission"]


async def test_store_failure_answers_ar_so_the_sender_retries(db_url: str) -> None:
    unmigrated = Database(db_url)  # no tables: every write fails
    s = await make_stack(unmigrated)
    client = await MllpClient.connect(s.port)
    try:
        ack = await client.send(sample("ADT-A01-01.hl7"))
        assert msa(ack) == ("AR", "MSG00001") and err_code(ack) == "207"
    finally:
        await client.close()
        await s.server.stop()
        await unmigrated.close()


async def test_peers_outside_the_allow_list_and_idle_connections_are_closed(database: Database) -> None:
    s = await make_stack(database, allowed_peers=("10.0.0.0/8",))
    try:
        client = await MllpClient.connect(s.port)
        await client.write(frame(sample("ADT-A01-01.hl7")))
        assert await client.closed_by_peer()
        await client.close()
    finally:
        await s.server.stop()
    s = await make_stack(database, allowed_peers=("127.0.0.1",), idle_timeout_s=0.2)
    try:
        client = await MllpClient.connect(s.port)
        assert msa(await client.send(sample("ADT-A01-01.hl7")))[0] == "AA"
        assert await client.closed_by_peer()  # then silence: the listener hangs up
        await client.close()
    finally:
        await s.server.stop()
    assert await s.messages() == 0  # unknown person: nothing kept


async def test_a_message_acknowledged_but_left_unprocessed_is_recovered_by_the_periodic_job(stack: Stack) -> None:
    """A database hiccup between the commit (the ACK) and the processing leaves a message
    `received`: the recovery job (every RECOVER_INTERVAL_S) finishes it, not the next restart."""
    ghh = await stack.person("test1:PATID1234")
    raw = sample("ADT-A01-01.hl7")
    received = await stack.service.keep(parse(raw), raw)  # stored and acknowledged, not processed
    assert received.pending and await stack.notices(ghh) == []
    # Right after: it may be being processed by its own connection; the job leaves it alone.
    assert await stack.service.recover_settled(stack.clock.now()) == 0
    stack.clock.advance(timedelta(seconds=RECOVER_SETTLE_S + 1))
    assert await stack.service.recover_settled(stack.clock.now()) == 1
    kinds = [n["kind"] for n in await stack.notices(ghh)]
    assert kinds == ["alert.admission"]  # one message per hospital event
    assert await stack.service.recover_settled(stack.clock.now()) == 0  # once only
    assert RECOVER_INTERVAL_S <= 60  # "within a minute"


async def test_a_processing_failure_keeps_the_message_alone_and_rolls_back_the_rest(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new message is stored and processed in one unit of work; when processing raises, that
    unit is rolled back whole (no alert, no notice, no move half-written), the message is kept
    alone and acknowledged, and the processing that follows posts it exactly once."""
    ref = await stack.person("test1:PATID1234")
    real = alert_decision.decide
    calls = 0

    def flaky(*args: Any, **kwargs: Any) -> alert_decision.Decision:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the first try")
        return real(*args, **kwargs)

    monkeypatch.setattr(alert_decision, "decide", flaky)
    client = await MllpClient.connect(stack.port)
    try:
        assert msa(await client.send(sample("ADT-A01-01.hl7")))[0] == "AA"
    finally:
        await client.close()
        await stack.server.stop()
    assert calls == 2
    assert [n["kind"] for n in await stack.notices(ref)] == ["alert.admission"]
    async with stack.db.unit() as uow:
        alerts = (await uow.session.execute(select(AlertRow.id))).scalars().all()
        states = (await uow.session.execute(select(InboundMessageRow.state))).scalars().all()
    assert len(alerts) == 1 and states == ["processed"]
    assert (await stack.setting(ref))[0] is Setting.HOSPITAL
