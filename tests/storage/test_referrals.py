"""Referrals stored and decided on the selected backend (SQLite, PostgreSQL): one unit of work each."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hub.domain.caseload import Limits
from hub.domain.errors import DomainError
from hub.domain.persons import INS, Identifier
from hub.domain.referral import Draft, Source, Status
from hub.services import cases, export, referrals, report
from hub.storage import models_referral  # noqa: F401 - registers the tables for the comparison
from hub.storage.database import Database
from hub.storage.models import Base

pytestmark = pytest.mark.db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LIMITS = Limits(40, 60, 5)
NIR = Identifier(INS, "269054958815780")
SERVERS = ("x",)
CMS = ("@cm1:x", "@cm2:x")
PARIS = ZoneInfo("Europe/Paris")


def _draft(**kw: object) -> Draft:
    args: dict[str, object] = dict(source=Source.MATRIX, referrer="@doc:x", name="Paulette Exemple",
                                   born=date(1938, 7, 14), reason="chutes répétées, vit seule",
                                   identifiers=(NIR,), gp="@gp:x", referrer_room="!dm:x")
    args.update(kw)
    return Draft(**args)  # type: ignore[arg-type]


async def _payload(db: Database, key: str) -> dict[str, Any]:
    """The pending outbox entry under `key` (parameters are kept until it is sent)."""
    async with db.unit() as uow:
        entries = await uow.outbox.pending(NOW + timedelta(days=400))
    return next(e.payload for e in entries if e.key == key)


async def _receive(db: Database, key: str, **kw: object) -> tuple[str, bool]:
    async with db.unit() as uow:
        got = await referrals.receive(uow, _draft(**kw), source_key=key, now=NOW, today=NOW.date(),
                                      allowed_servers=SERVERS, bot_user="@relais:x")
        return got.referral.ref, got.new


async def test_migration_matches_the_models(database: Database) -> None:
    def diff(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert [c for c in changes if "referr" in repr(c)] == []


async def test_a_referral_is_numbered_once_per_source_event(database: Database) -> None:
    assert await _receive(database, "matrix:$a") == ("O-2026-0001", True)
    assert await _receive(database, "matrix:$a") == ("O-2026-0001", False)  # a replay finds it
    assert await _receive(database, "matrix:$b", identifiers=()) == ("O-2026-0002", True)
    # The same person referred again while pending is flagged in the triage notice.
    assert await _receive(database, "matrix:$c") == ("O-2026-0003", True)
    first = await _payload(database, "referral-new:O-2026-0001:0")
    again = await _payload(database, "referral-new:O-2026-0003:0")
    assert first["desk"] == "triage" and first["params"]["name"] == "Paulette Exemple"
    assert not first["params"]["duplicate"]
    assert again["params"]["duplicate"] == {"key": "referral.also_pending", "params": {"refs": "O-2026-0001"}}
    async with database.unit() as uow:
        stored = await uow.referrals.lock("O-2026-0001")
    assert stored is not None and stored.identifiers == (NIR,) and stored.gp == "@gp:x"
    assert stored.referrer_room == "!dm:x" and stored.status is Status.PENDING and stored.born == date(1938, 7, 14)


@pytest.mark.parametrize(("kw", "key"), [
    ({"born": None}, "error.referral_born_missing"),
    ({"born": date(2030, 1, 1)}, "error.birth_date"),
    ({"reason": "  "}, "error.referral_reason_missing"),
    ({"name": " "}, "error.display_name"),
    ({"gp": "@gp:elsewhere.org"}, "error.server_not_allowed"),
    ({"identifiers": (NIR, NIR)}, "error.identifier_duplicate"),
])
async def test_a_bad_referral_keeps_nothing(database: Database, kw: dict[str, object], key: str) -> None:
    with pytest.raises(DomainError) as err:
        await _receive(database, "matrix:$bad", **kw)
    assert err.value.key == key
    async with database.unit() as uow:
        assert await uow.referrals.pending() == []
        assert await uow.referrals.next_sequence(2026) == 1  # the failed one used no number


async def test_accept_opens_the_file_for_the_case_manager_with_most_room(database: Database) -> None:
    async with database.unit() as uow:  # cm1 already has a file: cm2 has more room
        await cases.open_case(uow, referent="@cm1:x", name="Autre", born=None, identifiers=(), limits=LIMITS, now=NOW,
                              tz=PARIS)
    ref, _ = await _receive(database, "matrix:$a")
    async with database.unit() as uow:
        with pytest.raises(DomainError) as err:
            await referrals.accept(uow, ref, by="@coord:x", requested=None, case_managers=CMS, limits=LIMITS,
                                   allowed_servers=SERVERS, bot_user="@relais:x", now=NOW, tz=PARIS)
        assert err.value.key == "error.referral_criteria"
    async with database.unit() as uow:
        await referrals.record_criteria(uow, ref, ["autonomie=oui", "aides=oui", "coordination=oui"])
    async with database.unit() as uow:
        done = await referrals.accept(uow, ref, by="@coord:x", requested=None, case_managers=CMS, limits=LIMITS,
                                      allowed_servers=SERVERS, bot_user="@relais:x", now=NOW + timedelta(days=1),
                                      tz=PARIS)
    assert done.referent == "@cm2:x" and done.case_ref == "R-2026-0002"
    kinds = [(type(e).__name__, getattr(e, "user_id", None) or getattr(e, "kind", None)) for e in done.effects]
    assert ("Invite", "@gp:x") in kinds and ("Invite", "@cm2:x") in kinds and ("CreateRoom", None) in kinds
    decision = await _payload(database, f"referral-decision:{ref}:0")
    assert decision["kind"] == "referral.decision" and decision["mentions"] == ["@doc:x"]
    assert decision["room_id"] == "!dm:x" and decision["params"]["cm"] == "@cm2:x"
    async with database.unit() as uow:
        person = await uow.persons.get("R-2026-0002")
        members = {m.user_id: m.role.value for m in await uow.team.members("R-2026-0002")}
        again = await uow.referrals.lock(ref)
        exported = await export.export(uow, "R-2026-0002", NOW)
        exported_other = await export.export(uow, "R-2026-0001", NOW)
    assert person is not None and person.referent == "@cm2:x" and person.identifiers == (NIR,)
    assert members == {"@cm2:x": "case_manager", "@gp:x": "gp"}
    assert again is not None and again.status is Status.ACCEPTED and again.case_ref == "R-2026-0002"
    assert exported["referral"]["ref"] == ref and exported["referral"]["reason"].startswith("chutes")
    assert exported_other["referral"] is None
    # The same person referred again is flagged on arrival and never opened twice.
    second, _ = await _receive(database, "fhir:body:1", source=Source.FHIR, referrer_room=None)
    async with database.unit() as uow:
        flagged = await uow.referrals.lock(second)
    assert flagged is not None and flagged.duplicate_of == "R-2026-0002"


async def test_refuse_then_remind_erase_and_count(database: Database) -> None:
    refused, _ = await _receive(database, "matrix:$a")
    waiting, _ = await _receive(database, "fhir:body:2", source=Source.FHIR, referrer_room=None, identifiers=())
    async with database.unit() as uow:
        r = await referrals.refuse(uow, refused, why="situation non complexe", refer_to="SSIAD Est",
                                   by="@coord:x", now=NOW + timedelta(days=2))
    told = await _payload(database, f"referral-decision:{refused}:0")
    assert r.status is Status.REFUSED and told["params"]["where"]["params"]["service"] == "SSIAD Est"
    async with database.unit() as uow:
        with pytest.raises(DomainError) as err:
            await referrals.refuse(uow, refused, why="encore", refer_to=None, by="@coord:x", now=NOW)
        assert err.value.key == "error.referral_decided"
    sweeper = referrals.ReferralSweeper(database, reminder_days=7, erase_days=90)
    assert await sweeper.sweep(NOW + timedelta(days=6)) == 0
    assert await sweeper.sweep(NOW + timedelta(days=7)) == 1
    assert await sweeper.sweep(NOW + timedelta(days=7, hours=2)) == 0  # once a day
    assert await sweeper.sweep(NOW + timedelta(days=8)) == 1
    assert await sweeper.sweep(NOW + timedelta(days=92)) == 2  # reminder + erasure
    async with database.unit() as uow:
        erased = await uow.referrals.lock(refused)
        pending = await uow.referrals.pending()
        reminders = await uow.outbox.count("pending")
        _, sections = await report.build(uow, date(2026, 3, 1), date(2026, 3, 31), today=date(2026, 3, 31),
                                         case_managers=CMS, limits=LIMITS)
    assert erased is not None and (erased.name, erased.reason, erased.identifiers, erased.refusal) == ("", "", (), None)
    assert erased.status is Status.REFUSED and [p.ref for p in pending] == [waiting]
    assert reminders == 2 + 1 + 3 + 2  # 2 triage notices, 1 decision, 3 reminders, 2 redactions
    redactions = [await _payload(database, f"referral-erase:{refused}:{i}") for i in (0, 1)]
    assert [(p["notice_key"], p["desk"], p["room_id"]) for p in redactions] == [
        (f"referral-new:{refused}:0", "triage", None), (f"referral-decision:{refused}:0", None, "!dm:x")]
    figures = sections["referrals"]
    assert (figures["matrix.received"], figures["matrix.refused"], figures["fhir.received"],
            figures["fhir.pending"], figures["total.received"]) == (1, 1, 1, 1, 2)
    assert figures["matrix.median_days_to_decision"] == 2


async def test_triage_room_is_asked_once_and_new_members_are_invited(database: Database) -> None:
    assert await referrals.ensure_triage(database, ["@coord:x", "@cm1:x"], NOW) == 2  # create + welcome
    assert await referrals.ensure_triage(database, ["@coord:x", "@cm1:x"], NOW + timedelta(hours=1)) == 0
    assert await referrals.ensure_triage(database, ["@coord:x", "@cm1:x", "@cm3:x"], NOW + timedelta(hours=2)) == 1
    assert await referrals.ensure_triage(database, ["@cm1:x", "@cm3:x"], NOW + timedelta(hours=3)) == 1
    assert await referrals.ensure_triage(database, ["@cm1:x", "@cm3:x"], NOW + timedelta(hours=4)) == 0
    async with database.unit() as uow:
        entries = await uow.outbox.pending(NOW + timedelta(hours=5))
    assert [(e.action, e.payload.get("user_id")) for e in entries] == [
        ("create_triage", None), ("notify", None), ("invite_desk", "@cm3:x"), ("kick_desk", "@coord:x")]
    # One lane: the welcome and the invites wait for the room's creation, in order.
    assert {e.lane for e in entries} == {"desk:triage"}


async def test_a_crash_before_commit_keeps_no_referral_and_no_number(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.unit() as uow:
            await referrals.receive(uow, _draft(), source_key="matrix:$crash", now=NOW, today=NOW.date(),
                                    allowed_servers=SERVERS, bot_user="@relais:x")
            raise RuntimeError("the process dies before the commit")
    # The replayed event (the claim was rolled back with it) makes the referral once.
    assert await _receive(database, "matrix:$crash") == ("O-2026-0001", True)
    assert await _receive(database, "matrix:$crash") == ("O-2026-0001", False)
    async with database.unit() as uow:
        assert [r.ref for r in await uow.referrals.pending()] == ["O-2026-0001"]


async def test_an_event_id_of_255_characters_keys_its_referral(database: Database) -> None:
    long_id = "$" + "e" * 254
    key = referrals.source_key("matrix", long_id)
    assert len(key) <= 255 and key != referrals.source_key("matrix", long_id[:-1] + "f")
    assert await _receive(database, key) == ("O-2026-0001", True)
    assert await _receive(database, referrals.source_key("matrix", long_id)) == ("O-2026-0001", False)


@pytest.mark.parametrize(("ref", "key"), [("O-2026-0099", "error.referral_unknown"),
                                          ("R-2026-0001", "error.referral_ref"), ("0-2026-0001", "error.referral_ref")])
async def test_an_unknown_or_malformed_reference_is_named_in_the_error(database: Database, ref: str, key: str) -> None:
    await _receive(database, "matrix:$a")
    for act in (lambda uow: referrals.record_criteria(uow, ref, ["autonomie=oui"]),
                lambda uow: referrals.refuse(uow, ref, why="x", refer_to=None, by="@c:x", now=NOW),
                lambda uow: referrals.accept(uow, ref, by="@c:x", requested=None, case_managers=CMS, limits=LIMITS,
                                             allowed_servers=SERVERS, bot_user="@relais:x", now=NOW, tz=PARIS)):
        async with database.unit() as uow:
            with pytest.raises(DomainError) as err:
                await act(uow)
        assert err.value.key == key
    async with database.unit() as uow:
        assert [r.criteria.autonomy for r in await uow.referrals.pending()] == [None]  # nothing changed


async def test_the_desk_guard_leaves_the_triage_room_alone(database: Database) -> None:
    from hub.clock import FakeClock
    from hub.services.desks import DeskGuard

    await referrals.ensure_triage(database, ["@coord:x", "@cm1:x"], NOW)
    async with database.unit() as uow:
        await uow.desks.set_room("triage", "!triage:x")
    assert not await DeskGuard(database, FakeClock(NOW)).intruded("!triage:x", "$join", "@coord:x")
    async with database.unit() as uow:
        assert await uow.desks.room_of("triage") == "!triage:x"


@pytest.mark.parametrize(("recorded", "referred"), [
    ("CHU-X", "chu-x"),  # a namespace id compares without case (SPEC §7)
    ("1.2.250.1.71.4.2.2", "urn:oid:1.2.250.1.71.4.2.2"),  # one OID, two forms (SPEC §4)
    ("urn:oid:1.2.250.1.71.4.2.2", "URN:OID:1.2.250.1.71.4.2.2"),
    ("https://chu-x.fr/ipp", "HTTPS://CHU-X.fr/ipp/"),  # a FHIR system: scheme/host case, trailing slash
])
async def test_a_person_followed_under_another_spelling_is_flagged_and_never_opened_twice(
        database: Database, recorded: str, referred: str) -> None:
    async with database.unit() as uow:
        person, _w, _e = await cases.open_case(
            uow, referent="@cm1:x", name="Paulette Exemple", born=None, identifiers=[Identifier(recorded, "4455")],
            limits=LIMITS, now=NOW, tz=PARIS)
    ref, _ = await _receive(database, "matrix:$same", identifiers=(Identifier(referred, "4455"),))
    notice = await _payload(database, f"referral-new:{ref}:0")
    assert notice["params"]["duplicate"] == {"key": "referral.duplicate", "params": {"case": person.case_ref}}
    again, _ = await _receive(database, "matrix:$again", identifiers=(Identifier(recorded, "4455"),))
    assert (await _payload(database, f"referral-new:{again}:0"))["params"]["duplicate"]["params"] == \
        {"case": person.case_ref}
    async with database.unit() as uow:  # `!new` with the other spelling is refused too
        with pytest.raises(DomainError) as err:
            await cases.open_case(uow, referent="@cm2:x", name="Paulette Exemple", born=None,
                                  identifiers=[Identifier(referred, "4455")], limits=LIMITS, now=NOW, tz=PARIS)
    assert err.value.key == "error.identifier_taken"
    async with database.unit() as uow:  # a different value stays another person
        assert await uow.persons.owner_of(Identifier(referred, "4456")) is None


async def test_a_pending_referral_under_another_spelling_is_flagged(database: Database) -> None:
    first, _ = await _receive(database, "matrix:$one", identifiers=(Identifier("CHU-X", "4455"),))
    second, _ = await _receive(database, "matrix:$two", identifiers=(Identifier("chu-x", "4455"),))
    assert (await _payload(database, f"referral-new:{second}:0"))["params"]["duplicate"] == \
        {"key": "referral.also_pending", "params": {"refs": first}}


@pytest.mark.parametrize("decision", ["accept", "refuse"])
async def test_a_decision_taken_while_the_referrer_had_no_room_is_posted_in_their_next_one(
        database: Database, decision: str) -> None:
    ref, _ = await _receive(database, "matrix:$a")
    async with database.unit() as uow:  # someone else entered the referrer's room: given up
        await uow.referrals.add_referrer_room("!dm:x", "@doc:x")
        await uow.referrals.forget_referrer_room("!dm:x")
        await referrals.record_criteria(uow, ref, ["autonomie=oui", "aides=oui", "coordination=oui"])
    async with database.unit() as uow:
        if decision == "accept":
            await referrals.accept(uow, ref, by="@coord:x", requested=None, case_managers=CMS, limits=LIMITS,
                                   allowed_servers=SERVERS, bot_user="@relais:x", now=NOW, tz=PARIS)
        else:
            await referrals.refuse(uow, ref, why="aides suffisantes", refer_to="SSIAD du secteur", by="@coord:x",
                                   now=NOW)
        assert [e for e in await uow.outbox.pending(NOW + timedelta(days=1)) if "decision" in e.key] == []
    # The referrer opens a new direct room with the bot: the decision is posted there, once.
    assert await referrals.adopt_referrer_room(database, "!dm2:x", "@doc:x", NOW + timedelta(days=2)) == 1
    assert await referrals.adopt_referrer_room(database, "!dm3:x", "@doc:x", NOW + timedelta(days=3)) == 0
    told = await _payload(database, f"referral-decision:{ref}:0")
    assert told["kind"] == "referral.decision" and told["room_id"] == "!dm2:x" and told["mentions"] == ["@doc:x"]
    if decision == "accept":
        assert told["message"] == "referral.accepted" and told["params"]["cm"] == "@cm1:x"
    else:
        assert told["message"] == "referral.refused" and told["params"]["why"] == "aides suffisantes"
        assert told["params"]["where"] == {"key": "referral.refer_to", "params": {"service": "SSIAD du secteur"}}
    async with database.unit() as uow:
        stored = await uow.referrals.lock(ref)
    assert stored is not None and stored.referrer_room == "!dm2:x"  # erasure redacts it there


async def test_a_decision_already_posted_is_not_posted_again_in_a_new_room(database: Database) -> None:
    ref, _ = await _receive(database, "matrix:$a")
    async with database.unit() as uow:
        await referrals.refuse(uow, ref, why="x", refer_to=None, by="@coord:x", now=NOW)
        await uow.referrals.add_referrer_room("!dm:x", "@doc:x")
        await uow.referrals.forget_referrer_room("!dm:x")  # given up after the decision was posted
    assert await referrals.adopt_referrer_room(database, "!dm2:x", "@doc:x", NOW) == 0
    assert (await _payload(database, f"referral-decision:{ref}:0"))["room_id"] == "!dm:x"


async def test_a_lost_triage_room_is_made_anew_once_per_loss(database: Database) -> None:
    """The loss of the triage room is seen twice (the bot's removal in a sync, a send refused) and
    by two workers at once: one new room, its pending referrals posted again once; lost again the
    same day, not made anew (what is posted there is then reported to the pilots)."""
    from hub.clock import FakeClock
    from hub.services.desks import DeskGuard

    assert await referrals.ensure_triage(database, ["@coord:x", "@cm1:x"], NOW) > 0
    async with database.unit() as uow:
        await uow.desks.set_room("triage", "!t1:x")
    ref, _ = await _receive(database, "m:1")
    async with database.unit() as uow:
        posted = next(e for e in await uow.outbox.pending(NOW) if e.key == f"referral-new:{ref}:0")
        await uow.outbox.done(posted.id, "$posted")
        entry = next(e for e in await uow.outbox.pending(NOW) if e.payload.get("desk") == "triage")
    guard = DeskGuard(database, FakeClock(NOW))
    assert await guard.bot_removed("!t1:x", "$kick", "kicked") is True
    assert await guard.bot_removed("!t1:x", "$kick", "kicked") is False  # the same event again
    assert await guard.unreachable("!t1:x", entry.id) is True  # an entry waits for the new room
    async with database.unit() as uow:
        assert await referrals.renew_triage(uow, "!t1:x", NOW) is False  # a second worker: claimed
        pending = [e for e in await uow.outbox.pending(NOW + timedelta(days=1))]
        assert await uow.desks.room_of("triage") is None
    created = [e for e in pending if e.action == "create_triage" and e.payload.get("lost_room")]
    assert len(created) == 1 and created[0].payload["lost_room"] == "!t1:x" and created[0].lane == "desk-new:triage"
    assert sorted(created[0].payload["members"]) == ["@cm1:x", "@coord:x"]
    assert [e.key for e in pending if e.key.startswith("referral-new:")] == [f"referral-new:{ref}@1:0"]
    # The new room is made, then lost again within the day: not made anew.
    async with database.unit() as uow:
        await uow.desks.set_room("triage", "!t2:x")
    assert await guard.bot_removed("!t2:x", "$kick2", "kicked") is False
    assert await guard.unreachable("!t2:x", entry.id) is False
    # A day later, a new loss is made anew again.
    later = DeskGuard(database, FakeClock(NOW + timedelta(days=1, minutes=1)))
    assert await later.bot_removed("!t2:x", "$kick3", "kicked") is True


async def test_a_decision_on_its_way_to_a_referrer_room_the_bot_was_removed_from_is_told_in_their_next(
        database: Database) -> None:
    """The referrer removes the bot from their room (or leaves it) while a decision is on its way
    there: it is held, never reported as failed, and posted once in the next room they open; a
    decision already posted before is not posted again."""
    from hub.clock import FakeClock
    from hub.services.desks import DeskGuard

    await referrals.adopt_referrer_room(database, "!dm:x", "@doc:x", NOW)
    told_ref, _ = await _receive(database, "m:told")
    held_ref, _ = await _receive(database, "m:held", identifiers=())
    for ref in (told_ref, held_ref):
        async with database.unit() as uow:
            await referrals.refuse(uow, ref, why="aides suffisantes", refer_to=None, by="@coord:x", now=NOW)
    async with database.unit() as uow:
        told = next(e for e in await uow.outbox.pending(NOW) if e.key == f"referral-decision:{told_ref}:0")
        await uow.outbox.done(told.id, "$told")
        held = next(e for e in await uow.outbox.pending(NOW) if e.key == f"referral-decision:{held_ref}:0")
    guard = DeskGuard(database, FakeClock(NOW))
    await guard.bot_removed("!dm:x", "$kick", "kicked")
    assert await guard.unreachable("!dm:x", held.id) is True  # the send refused: it waits no more
    async with database.unit() as uow:
        assert await uow.outbox.state_of(f"referral-decision:{held_ref}:0") == "failed"
        assert await uow.referrals.referrer_of("!dm:x") is None
        assert not [e for e in await uow.outbox.pending(NOW) if e.key.startswith("dead:")]  # nobody falsely alarmed
    assert await referrals.adopt_referrer_room(database, "!dm2:x", "@doc:x", NOW) == 1
    assert await referrals.adopt_referrer_room(database, "!dm3:x", "@doc:x", NOW) == 0
    async with database.unit() as uow:
        again = [e for e in await uow.outbox.pending(NOW) if e.key.startswith("referral-decision:")]
        assert [(e.key, e.payload["room_id"]) for e in again] == [(f"referral-decision:{held_ref}@!dm2:x:0", "!dm2:x")]
        await uow.outbox.done(again[0].id, "$again")
    # Erased 90 days on: the decision is redacted where it was posted again.
    swept = await referrals.ReferralSweeper(database).sweep(NOW + timedelta(days=91))
    assert swept == 2
    async with database.unit() as uow:
        redactions = [e.payload for e in await uow.outbox.pending(NOW + timedelta(days=92)) if e.action == "redact"]
    assert {"notice_key": f"referral-decision:{held_ref}@!dm2:x:0", "room_id": "!dm2:x"}.items() <= next(
        p for p in redactions if p.get("room_id")).items()


async def test_accept_racing_refuse_from_two_coordinators_decides_once(database: Database) -> None:
    """Two coordinators decide the same referral at the same moment: one decision holds, the other
    is told it is already decided; one decision notice, at most one file."""
    import asyncio

    ref, _ = await _receive(database, "m:race")
    await referrals.adopt_referrer_room(database, "!dm:x", "@doc:x", NOW)
    async with database.unit() as uow:
        await referrals.record_criteria(uow, ref, ["autonomie=oui", "aides=oui", "coordination=oui"])

    async def accept() -> str:
        async with database.unit() as uow:
            await referrals.accept(uow, ref, by="@coord1:x", requested=None, case_managers=CMS, limits=LIMITS,
                                   allowed_servers=SERVERS, bot_user="@relais:x", now=NOW, tz=PARIS)
        return "accepted"

    async def refuse() -> str:
        async with database.unit() as uow:
            await referrals.refuse(uow, ref, why="aides suffisantes", refer_to=None, by="@coord2:x", now=NOW)
        return "refused"

    results = await asyncio.gather(accept(), refuse(), return_exceptions=True)
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, DomainError)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].key == "error.referral_decided", results
    async with database.unit() as uow:
        stored = await uow.referrals.lock(ref)
        decisions = [e for e in await uow.outbox.pending(NOW) if e.key.startswith("referral-decision:")]
        files = await uow.persons.active_refs("@cm1:x") + await uow.persons.active_refs("@cm2:x")
    assert stored is not None and stored.status.value == won[0] and len(decisions) == 1
    assert len(files) == (1 if won == ["accepted"] else 0)


async def test_a_person_whose_file_was_closed_can_be_referred_and_followed_again(database: Database) -> None:
    # A file closed (stabilised, refusal…) kept its identifiers for good: the person could never be
    # referred again (flagged "already followed", accept refused) nor opened with `!new`.
    async with database.unit() as uow:
        first, _w, _e = await cases.open_case(uow, referent="@cm1:x", name="Paulette Exemple", born=None,
                                              identifiers=[NIR], limits=LIMITS, now=NOW, tz=PARIS)
        await uow.persons.close_file(first.case_ref, NOW + timedelta(days=30), "stabilised")
    later = NOW + timedelta(days=200)
    ref, _ = await _receive(database, "matrix:$back")
    notice = await _payload(database, f"referral-new:{ref}:0")
    assert notice["params"]["duplicate"] == {"key": "referral.previously", "params": {"case": first.case_ref}}
    async with database.unit() as uow:
        await referrals.record_criteria(uow, ref, ["autonomie=oui", "aides=oui", "coordination=oui"])
    async with database.unit() as uow:
        done = await referrals.accept(uow, ref, by="@coord:x", requested=None, case_managers=CMS, limits=LIMITS,
                                      allowed_servers=SERVERS, bot_user="@relais:x", now=later, tz=PARIS)
    async with database.unit() as uow:
        new = await uow.persons.get(done.case_ref)
        old = await uow.persons.get(first.case_ref)
        owner = await uow.persons.owner_of(NIR)
        audit = await uow.audit.entries(first.case_ref)
    assert done.case_ref != first.case_ref and new is not None and new.identifiers == (NIR,)
    assert old is not None and old.identifiers == () and owner == done.case_ref  # hospital messages find the new file
    assert [(action, detail) for _at, _who, action, detail in audit if action == "identifiers moved"] == \
        [("identifiers moved", {"to": done.case_ref})]
    told = [e.params for e in done.effects if getattr(e, "message", None) == "team.previous"]
    assert told == [{"cases": first.case_ref}]
    # Open again, the identifier is taken: neither a third file nor `!id add` elsewhere.
    async with database.unit() as uow:
        with pytest.raises(DomainError) as err:
            await cases.open_case(uow, referent="@cm2:x", name="Paulette Exemple", born=None, identifiers=[NIR],
                                  limits=LIMITS, now=later, tz=PARIS)
    assert err.value.key == "error.identifier_taken"
    again, _ = await _receive(database, "matrix:$again")
    async with database.unit() as uow:
        flagged = await uow.referrals.lock(again)
    assert flagged is not None and flagged.duplicate_of == done.case_ref


async def test_a_referral_flagged_already_followed_is_acceptable_once_that_file_is_closed(database: Database) -> None:
    # Flagged on arrival (the file was open); the file closed since: "already followed" stood for good.
    async with database.unit() as uow:
        first, _w, _e = await cases.open_case(uow, referent="@cm1:x", name="Paulette Exemple", born=None,
                                              identifiers=[NIR], limits=LIMITS, now=NOW, tz=PARIS)
    ref, _ = await _receive(database, "matrix:$while-open")
    async with database.unit() as uow:
        flagged = await uow.referrals.lock(ref)
        assert flagged is not None and flagged.duplicate_of == first.case_ref
        await uow.persons.close_file(first.case_ref, NOW + timedelta(days=1), "stabilised")
    async with database.unit() as uow:
        await referrals.record_criteria(uow, ref, ["autonomie=oui", "aides=oui", "coordination=oui"])
    async with database.unit() as uow:
        done = await referrals.accept(uow, ref, by="@coord:x", requested=None, case_managers=CMS, limits=LIMITS,
                                      allowed_servers=SERVERS, bot_user="@relais:x", now=NOW + timedelta(days=2),
                                      tz=PARIS)
    assert done.case_ref != first.case_ref
    async with database.unit() as uow:
        assert await uow.persons.owner_of(NIR) == done.case_ref


async def test_a_hospital_merge_takes_an_identifier_a_closed_file_still_held(database: Database) -> None:
    # A40: the open file's identifier takes the surviving value; a closed file holding that value
    # blocked the rename ("taken") though nobody follows that file any more.
    old_ipp, new_ipp = Identifier("CHU-X", "1111"), Identifier("CHU-X", "2222")
    async with database.unit() as uow:
        closed, _w, _e = await cases.open_case(uow, referent="@cm1:x", name="Ancien", born=None,
                                               identifiers=[new_ipp], limits=LIMITS, now=NOW, tz=PARIS)
        await uow.persons.close_file(closed.case_ref, NOW, "stabilised")
        live, _w, _e = await cases.open_case(uow, referent="@cm1:x", name="Paulette Exemple", born=None,
                                             identifiers=[old_ipp], limits=LIMITS, now=NOW, tz=PARIS)
    async with database.unit() as uow:
        assert await uow.alerts.rekey_identifier(live.case_ref, old_ipp, new_ipp)
    async with database.unit() as uow:
        assert await uow.persons.owner_of(new_ipp) == live.case_ref
        other, _w, _e = await cases.open_case(uow, referent="@cm2:x", name="Autre", born=None,
                                              identifiers=[Identifier("CHU-X", "3333")], limits=LIMITS, now=NOW,
                                              tz=PARIS)
        assert not await uow.alerts.rekey_identifier(other.case_ref, Identifier("CHU-X", "3333"), new_ipp)
