"""Kinds an interface engineer found after the feed kinds (test_feed_kinds.py): test and training
messages on a production hub, resends of messages for nobody followed… Over real MLLP on TCP or
real HTTP where it is about what gets posted (invented patients; messages under
tests/inbound/messages/)."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub.config import AlertsConfig
from hub.inbound.hl7v2 import PRODUCTION
from hub.services.alerts import UNMATCHED_COUNTER, UNMATCHED_KEY_DAYS
from hub.storage.database import Database
from hub.storage.models_alerts import InboundMessageRow
from tests.inbound.alert_stack import Stack, fhir_door, make_stack
from tests.inbound.mllp_client import MllpClient, err_code
from tests.inbound.test_hospital_feeds import PATIENT_DATA, answers, client, message, outcome, problems, segments
from tests.samples_path import SAMPLES

pytestmark = [pytest.mark.db]
__all__ = ["client"]  # the fixture, shared with test_hospital_feeds
Post = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]
_GERIA = message("a01-geria.hl7")  # MSH-11 = P, control id L-1, PID-3 CHU-X:910031


@pytest.fixture
async def production(database: Database) -> AsyncIterator[Stack]:
    """A hub with the default `[alerts] processing_ids = ["P"]`."""
    s = await make_stack(database, processing_ids=PRODUCTION)
    try:
        yield s
    finally:
        await s.server.stop()


async def _post_to(stack: Stack) -> AsyncIterator[Post]:
    async with fhir_door(stack) as post:
        yield post


@pytest.fixture
async def fhir_production(production: Stack) -> AsyncIterator[Post]:
    async for post in _post_to(production):
        yield post


@pytest.fixture
async def fhir_test_hub(stack: Stack) -> AsyncIterator[Post]:
    async for post in _post_to(stack):
        yield post


def _processing(value: bytes, raw: bytes = _GERIA) -> bytes:
    return raw.replace(b"|L-1|P|", b"|L-1|" + value + b"|", 1)


# ------------------------------------------------------------ MSH-11 processing ID


@pytest.mark.parametrize("processing", [b"T", b"D", b"T^T", b"D^I", b"t"])
async def test_a_training_or_debugging_message_is_refused_ar_202_on_a_production_hub(
        production: Stack, processing: bytes, caplog: pytest.LogCaptureFixture) -> None:
    # A test engine pointed at production by mistake: an A01 with MSH-11 = T was kept, matched and
    # posted as a real admission to a real team — a stay that never happened.
    ref = await production.person("CHU-X:910031")
    client = await MllpClient.connect(production.port)
    try:
        with caplog.at_level(logging.WARNING):
            ack = await client.send(_processing(processing))
    finally:
        await client.close()
    assert answers(ack) == [("AR", "L-1")]
    assert err_code(ack) == "202"  # HL7 table 0357: unsupported processing id
    assert segments(ack, "MSH")[0][10] == processing.decode()  # MSH-11 echoed
    assert await production.messages() == 0 and await production.notices(ref) == []
    assert (await production.setting(ref))[0].value == "home"
    assert problems(production, "unsupported_processing_id") == 1 and outcome(production, "rejected") == 1
    lines = [r.getMessage() for r in caplog.records if "unsupported_processing_id" in r.getMessage()]
    assert len(lines) == 1 and "SIH/CHU-X" in lines[0] and "control id L-1" in lines[0]
    assert not any(data in lines[0] for data in PATIENT_DATA)


@pytest.mark.parametrize("processing", [b"P", b"P^T", b"P^", b"p", b"", b'""'])
async def test_a_production_message_is_taken_in_every_spelling(production: Stack, processing: bytes) -> None:
    # `P^T` (processing mode: current processing) and an absent MSH-11 (HL7 v2.1 senders) are production.
    ref = await production.person("CHU-X:910031")
    client = await MllpClient.connect(production.port)
    try:
        assert answers(await client.send(_processing(processing))) == [("AA", "L-1")]
    finally:
        await client.close()
    assert [n["message"] for n in await production.notices(ref)] == ["alert.admission"]


@pytest.mark.parametrize(("processing", "posted"), [
    (b"P^A", False), (b"P^R", False), (b"P^a", False),  # archive, restore from archive: past events replayed
    (b"P^I", True), (b"P^T", True), (b"P^", True),  # initial load (today's census), current processing
])
async def test_a_message_replayed_from_an_archive_is_acknowledged_and_never_told_as_news(
        production: Stack, processing: bytes, posted: bool) -> None:
    # MSH-11.2 (table 0207) was not read: an archive replayed announced admissions of years ago.
    ref = await production.person("CHU-X:910031")
    client = await MllpClient.connect(production.port)
    try:
        assert answers(await client.send(_processing(processing))) == [("AA", "L-1")]
    finally:
        await client.close()
    assert len(await production.notices(ref)) == (1 if posted else 0)
    assert await production.messages() == (1 if posted else 0)  # not kept, like A28
    assert outcome(production, "not_acted") == (0 if posted else 1)


async def test_a_test_hub_takes_what_its_processing_ids_list(stack: Stack, client: MllpClient) -> None:
    # The test stack is configured as the demo: processing_ids = ["P", "T", "D"].
    ref = await stack.person("CHU-X:910031")
    assert answers(await client.send(_processing(b"T"))) == [("AA", "L-1")]
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]


async def test_in_one_block_only_the_training_message_is_refused(production: Stack) -> None:
    ref = await production.person("CHU-X:910028")
    block = message("a01-a03-one-block.hl7").replace(b"|C28-2|P|", b"|C28-2|T|")
    client = await MllpClient.connect(production.port)
    try:
        assert answers(await client.send(block)) == [("AA", "C28-1"), ("AR", "C28-2")]
    finally:
        await client.close()
    assert [n["message"] for n in await production.notices(ref)] == ["alert.admission"]


async def test_an_event_relais_does_not_act_on_is_refused_too_when_it_is_training(production: Stack) -> None:
    # An A28 answered AA from a training engine would hide the misconfiguration from its operator.
    raw = message("a28-add-person.hl7")
    control = raw.split(b"|")[9]
    client = await MllpClient.connect(production.port)
    try:
        ack = await client.send(raw.replace(b"|" + control + b"|P|", b"|" + control + b"|T|", 1))
    finally:
        await client.close()
    assert answers(ack) == [("AR", control.decode())] and err_code(ack) == "202"


async def test_a_message_kept_then_refused_by_a_narrower_configuration_is_dropped_once_and_may_be_resent(
        database: Database, caplog: pytest.LogCaptureFixture) -> None:
    # A training message acknowledged while `processing_ids` listed T, left unprocessed by a crash,
    # then `processing_ids` narrowed to P: the recovery job refused it at every run, for ever.
    test_hub = await make_stack(database)
    narrowed = await make_stack(database, processing_ids=PRODUCTION)
    try:
        ref = await test_hub.person("CHU-X:910031")
        raw = _processing(b"T")
        kept = await test_hub.service.keep(test_hub.service.parse("hl7", raw), raw)
        assert kept.pending  # acknowledged, not yet processed
        with caplog.at_level(logging.ERROR, logger="hub.services.alerts"):
            assert await narrowed.service.recover() == 0
            assert await narrowed.service.recover() == 0  # not tried again
        lines = [r.getMessage() for r in caplog.records if "refused when processed" in r.getMessage()]
        assert len(lines) == 1
        assert "control id L-1" in lines[0] and not any(data in lines[0] for data in PATIENT_DATA)
        assert outcome(narrowed, "refused_on_replay") == 1
        assert await narrowed.messages() == 0 and await narrowed.notices(ref) == []
        # Its key went with it: resent to a hub that takes it, it is a new message, not a duplicate.
        client = await MllpClient.connect(test_hub.port)
        try:
            assert answers(await client.send(raw)) == [("AA", "L-1")]
        finally:
            await client.close()
        assert len(await test_hub.notices(ref)) == 1
    finally:
        await narrowed.server.stop()
        await test_hub.server.stop()


async def test_a_message_kept_then_failing_for_another_reason_than_a_refusal_is_kept_for_the_next_try(
        stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    # Acknowledged, left unprocessed by a crash, then the parser failed on it for a reason other
    # than a refusal (a fault of the version restarted, memory short on an 8 MB frame): it was
    # dropped whole as "refused", so a message acknowledged AA was lost for good.
    ref = await stack.person("CHU-X:910031")
    kept = await stack.service.keep(stack.service.parse("hl7", _GERIA), _GERIA)
    assert kept.pending
    working = stack.service.parsers["hl7"]

    def faulty(raw: bytes) -> Any:
        raise RuntimeError("a fault in the parser")

    stack.service.parsers["hl7"] = faulty
    with caplog.at_level(logging.ERROR, logger="hub.services.alerts"):
        assert await stack.service.recover() == 0
    assert not any("refused when processed" in r.getMessage() for r in caplog.records)
    assert outcome(stack, "refused_on_replay") == 0
    assert await stack.messages() == 1  # still kept, still pending
    stack.service.parsers["hl7"] = working  # the fault fixed: the next run processes it
    assert await stack.service.recover() == 1
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]


def test_the_setting_takes_only_table_0103_values_and_defaults_to_production() -> None:
    assert AlertsConfig().processing_ids == ("P",)
    assert AlertsConfig.model_validate({"processing_ids": ["P", "T"]}).processing_ids == ("P", "T")
    for bad in (["X"], [], ["p"]):
        with pytest.raises(ValueError, match="processing_ids"):
            AlertsConfig.model_validate({"processing_ids": bad})


# ------------------------------------------------------------ FHIR: test data (HTEST)

_HTEST = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"}


def _admit() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(
        (SAMPLES / "fhir" / "admit-notification-message-bundle-01.json").read_text(encoding="utf-8"))
    return bundle


def _labelled(where: str) -> dict[str, Any]:
    bundle = _admit()
    if where == "bundle":
        bundle.setdefault("meta", {})["security"] = [_HTEST]
    else:
        entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == where)
        entry["resource"].setdefault("meta", {})["tag" if where == "Patient" else "security"] = [copy.copy(_HTEST)]
    return bundle


@pytest.mark.parametrize("where", ["bundle", "MessageHeader", "Patient", "Encounter"])
async def test_a_fhir_bundle_labelled_test_data_is_refused_on_a_production_hub(
        production: Stack, fhir_production: Post, where: str, caplog: pytest.LogCaptureFixture) -> None:
    ref = await production.person("http://example.org/fhir/pid:06e1f0dd-5fbe-4480-9bb4-6b54ec02d31b")
    with caplog.at_level(logging.WARNING):
        status, body = await fhir_production(_labelled(where))
    assert status == 422 and body["issue"][0]["code"] == "business-rule"
    assert "HTEST" in body["issue"][0]["diagnostics"]
    assert await production.messages() == 0 and await production.notices(ref) == []
    lines = [r.getMessage() for r in caplog.records if "test_data" in r.getMessage()]
    assert len(lines) == 1 and "admit-notification-message-bundle-01" in lines[0]
    assert production.metrics.registry.get_sample_value(
        "relais_alerts_total", {"source": "fhir", "outcome": "test_data"}) == 1
    # The same notification without the label is news.
    assert (await fhir_production(_admit()))[0] == 200
    assert [n["message"] for n in await production.notices(ref)] == ["alert.admission_emergency"]


async def test_a_fhir_bundle_labelled_test_data_is_taken_by_a_test_hub(stack: Stack, fhir_test_hub: Post) -> None:
    ref = await stack.person("http://example.org/fhir/pid:06e1f0dd-5fbe-4480-9bb4-6b54ec02d31b")
    assert (await fhir_test_hub(_labelled("bundle")))[0] == 200
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission_emergency"]


# ------------------------------------------------------------ resends of messages for nobody followed


async def _unmatched(stack: Stack) -> tuple[str | None, float]:
    async with stack.db.unit() as uow:
        kept = await uow.kv.get(UNMATCHED_COUNTER)
    return kept, stack.metrics.registry.get_sample_value("relais_alerts_unknown_person_total") or 0.0


async def test_a_resend_of_a_message_for_nobody_followed_is_counted_once(stack: Stack) -> None:
    # The row was deleted once matched against no file, so each resend was a new message: on
    # both backends the unmatched count grew with every resend.
    client = await MllpClient.connect(stack.port)
    try:
        for _ in range(3):
            assert answers(await client.send(_GERIA)) == [("AA", "L-1")]
        # Re-encoded by the engine (LF ends, regenerated MSH-7): still the same message.
        again = _GERIA.replace(b"20261127214228||", b"20261128080000||", 1).replace(b"\r", b"\n")
        assert answers(await client.send(again)) == [("AA", "L-1")]
    finally:
        await client.close()
    assert await _unmatched(stack) == ("1", 1.0)
    assert outcome(stack, "unmatched") == 1 and outcome(stack, "duplicate") == 3
    async with stack.db.unit() as uow:  # its key only: no content kept
        rows = (await uow.session.execute(select(InboundMessageRow.state, InboundMessageRow.raw))).all()
    assert rows == [("unmatched", None)]


async def test_resends_of_a_message_for_nobody_on_several_connections_at_once_count_once(stack: Stack) -> None:
    # PostgreSQL: the first unit deleted its row before committing, so the resend waiting on the
    # unique key found no conflict and was kept and counted again.
    clients = [await MllpClient.connect(stack.port) for _ in range(4)]
    try:
        acks = await asyncio.gather(*(c.send(_GERIA) for c in clients))
    finally:
        for c in clients:
            await c.close()
    assert [answers(a) for a in acks] == [[("AA", "L-1")]] * 4
    assert await _unmatched(stack) == ("1", 1.0)


async def test_messages_for_nobody_arriving_at_once_are_each_counted(stack: Stack) -> None:
    # PostgreSQL: the count was read then written, so units counting at once lost counts (6 → 1).
    raws = [_GERIA.replace(b"|L-1|", f"|U-{n}|".encode()) for n in range(6)]
    clients = [await MllpClient.connect(stack.port) for _ in raws]
    try:
        await asyncio.gather(*(c.send(raw) for c, raw in zip(clients, raws, strict=True)))
    finally:
        for c in clients:
            await c.close()
    assert await _unmatched(stack) == ("6", 6.0)


async def test_a_resend_reaches_the_file_opened_since_the_message_came_for_nobody(stack: Stack) -> None:
    # The key of a message for nobody followed was kept so that its resend counts once; but a
    # resend after the person's file was opened (or the identifier added to it) was then a bare
    # duplicate: the admission never reached the team, where before the resend was matched.
    client = await MllpClient.connect(stack.port)
    try:
        assert answers(await client.send(_GERIA)) == [("AA", "L-1")]
        ref = await stack.person("CHU-X:910031")
        assert answers(await client.send(_GERIA)) == [("AA", "L-1")]
        assert answers(await client.send(_GERIA)) == [("AA", "L-1")]  # once matched, a resend posts nothing
    finally:
        await client.close()
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]
    assert await _unmatched(stack) == ("1", 1.0)  # counted once, when it was for nobody
    assert outcome(stack, "posted") == 1 and outcome(stack, "duplicate") == 2
    async with stack.db.unit() as uow:
        rows = (await uow.session.execute(select(InboundMessageRow.state, InboundMessageRow.raw))).all()
    assert rows == [("processed", None)]


async def test_the_key_of_a_message_for_nobody_is_let_go_after_its_resend_window(stack: Stack) -> None:
    async def keys() -> int:
        async with stack.db.unit() as uow:
            return len((await uow.session.execute(select(InboundMessageRow.id))).all())

    client = await MllpClient.connect(stack.port)
    try:
        assert answers(await client.send(_GERIA)) == [("AA", "L-1")]
        await stack.service.recover_settled(stack.clock.now() + timedelta(days=UNMATCHED_KEY_DAYS - 1))
        assert await keys() == 1
        await stack.service.recover_settled(stack.clock.now() + timedelta(days=UNMATCHED_KEY_DAYS + 1))
        assert await keys() == 0
    finally:
        await client.close()
    assert await _unmatched(stack) == ("1", 1.0)


# ------------------------------------------------------------ times given only to the day


def _admitted_at_8(raw: bytes = _GERIA) -> bytes:
    return raw.replace(b"20261127214228", b"20261129080000")


async def test_a_discharge_given_only_its_day_ends_the_stay_admitted_earlier_that_day(
        stack: Stack, client: MllpClient) -> None:
    # PV1-45 = 20261129 (DTM to the day) after an admission at 08:00 that day: the discharge was
    # read as midnight, older than the admission, so it was "late", moved nobody and the person
    # stayed in hospital — with "sortie à 00 h 00" shown.
    ref = await stack.person("CHU-X:910031")
    assert answers(await client.send(_admitted_at_8())) == [("AA", "L-1")]
    assert answers(await client.send(message("a03-discharge-date-only.hl7"))) == [("AA", "L-2")]
    setting, back = await stack.setting(ref)
    assert setting.value == "home" and str(back) == "2026-11-29"
    discharge = (await stack.notices(ref))[1]
    assert discharge["message"] == "alert.discharge" and discharge["params"]["late"] is None
    assert discharge["params"]["when"] == "2026-11-29"  # the day, not a made-up time
    assert discharge["params"]["todo"] is not None  # the return-home checklist


async def test_a_discharge_day_keyed_the_next_morning_still_ends_that_days_stay(
        stack: Stack, client: MllpClient) -> None:
    ref = await stack.person("CHU-X:910031")
    assert answers(await client.send(_admitted_at_8())) == [("AA", "L-1")]
    keyed_next_day = message("a03-discharge-date-only.hl7").replace(b"20261129180000", b"20261130081500")
    assert answers(await client.send(keyed_next_day)) == [("AA", "L-2")]
    assert (await stack.setting(ref))[0].value == "home"
    assert (await stack.notices(ref))[1]["params"]["when"] == "2026-11-29"


@pytest.mark.parametrize(("evn_6", "shown"), [
    (b"20261129", "2026-11-29"),  # the day only: shown as the day
    (b"2026112908", "2026-11-29"),  # the hour only
    (b"202611290815", "2026-11-29T08:15:00+01:00"),  # to the minute: the time is known
    (b"20261129081500.1234+0100", "2026-11-29T08:15:00.123400+01:00"),
    (b"20261129071500-0000", "2026-11-29T07:15:00+00:00"),
])
async def test_an_admission_time_is_shown_as_precisely_as_it_was_given(
        stack: Stack, client: MllpClient, evn_6: bytes, shown: str) -> None:
    ref = await stack.person("CHU-X:910031")
    raw = _GERIA.replace(b"EVN|A01|20261127214228", b"EVN|A01|20261129090000||||" + evn_6)
    assert answers(await client.send(raw)) == [("AA", "L-1")]
    assert (await stack.notices(ref))[0]["params"]["when"] == shown


def _bundle(name: str) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads((SAMPLES / "fhir" / name).read_text(encoding="utf-8"))
    return bundle


def _encounter(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")


async def test_a_fhir_discharge_whose_period_end_is_a_date_ends_that_days_stay(
        stack: Stack, fhir_test_hub: Post) -> None:
    ref = await stack.person("http://example.org/fhir/pid:06e1f0dd-5fbe-4480-9bb4-6b54ec02d31b")
    admit = _bundle("admit-notification-message-bundle-01.json")
    _encounter(admit)["period"] = {"start": "2026-11-29T08:00:00+01:00"}
    discharge = _bundle("discharge-notification-message-bundle-01.json")
    _encounter(discharge)["period"] = {"start": "2026-11-29T08:00:00+01:00", "end": "2026-11-29"}
    discharge["timestamp"] = "2026-11-29T17:00:00+01:00"
    assert (await fhir_test_hub(admit))[0] == 200
    assert (await fhir_test_hub(discharge))[0] == 200
    setting, back = await stack.setting(ref)
    assert setting.value == "home" and str(back) == "2026-11-29"
    notice = (await stack.notices(ref))[1]
    assert notice["message"] == "alert.discharge" and notice["params"]["late"] is None
    assert notice["params"]["when"] == "2026-11-29"


# ------------------------------------------------------------ outpatient visits


def _visit(trigger: bytes, control: bytes, evn_2: bytes, klass: bytes = b"O") -> bytes:
    return (_GERIA.replace(b"ADT^A01^ADT_A01|L-1", b"ADT^" + trigger + b"^ADT_" + trigger + b"|" + control)
            .replace(b"EVN|A01|20261127214228", b"EVN|" + trigger + b"|" + evn_2)
            .replace(b"PV1|1|I", b"PV1|1|" + klass))


async def test_the_end_of_an_outpatient_visit_is_no_return_from_hospital(stack: Stack, client: MllpClient) -> None:
    # A04 (PV1-2 = O) then A03 "end visit" (PV1-2 = O): the A03 recorded a return from hospital,
    # with the discharge letter to chase and a re-evaluation due within 7 days, for a consultation.
    ref = await stack.person("CHU-X:910031")
    assert answers(await client.send(_visit(b"A04", b"V-1", b"20261127140000"))) == [("AA", "V-1")]
    assert answers(await client.send(_visit(b"A03", b"V-2", b"20261127160000"))) == [("AA", "V-2")]
    setting, back = await stack.setting(ref)
    assert setting.value == "home" and back is None
    notices = await stack.notices(ref)
    assert [n["params"]["todo"] for n in notices] == [None, None]
    # Told as what it was: "hospitalisation" and "sortie d'hospitalisation" were false.
    assert [n["message"] for n in notices] == ["alert.visit", "alert.visit_end"]
    assert [n["kind"] for n in notices] == ["alert.admission", "alert.discharge"]


async def test_an_outpatient_class_on_the_discharge_of_an_inpatient_still_ends_the_stay(
        stack: Stack, client: MllpClient) -> None:
    ref = await stack.person("CHU-X:910031")
    assert answers(await client.send(_visit(b"A01", b"V-1", b"20261127140000", b"I"))) == [("AA", "V-1")]
    assert answers(await client.send(_visit(b"A03", b"V-2", b"20261129160000"))) == [("AA", "V-2")]
    setting, back = await stack.setting(ref)
    assert setting.value == "home" and str(back) == "2026-11-29"
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission", "alert.discharge"]
