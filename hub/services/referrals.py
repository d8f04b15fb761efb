"""Referrals to the integrated access point (SPEC §9): receive, assess, accept, refuse, remind.

Each use case is one unit of work: the referral's row and the notices it causes are committed
together, so a crash loses nor doubles neither a referral nor a decision. A referral is keyed by
what made it (the Matrix event, the FHIR request), so a replay finds it instead of adding one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from hub.clock import DEFAULT_TIMEZONE, Clock, local_date
from hub.domain import caseload, persons, referral, team
from hub.domain.effects import TRIAGE_DESK, CreateTriage, Effect, InviteToDesk, KickFromDesk, Notify, Redact
from hub.domain.errors import DomainError
from hub.domain.referral import Draft, Referral
from hub.domain.team import Role
from hub.services import cases, consent
from hub.services.outbox import enqueue
from hub.storage.database import Database, UnitOfWork
from hub.storage.repositories import fit_key

log = logging.getLogger(__name__)

TRIAGE_MEMBERS_KEY = "triage_members"
#: How many times the triage room was made anew (kv): names the notices re-posted in each.
TRIAGE_GENERATION_KEY = "triage_generation"
#: When the triage room was last made anew (kv).
TRIAGE_RENEWED_KEY = "triage_renewed"
#: The triage room is made anew at most once in this time (as a desk is): a member who keeps
#: removing the bot starts no loop; what is then posted there is set aside and reported to the
#: pilots (services/outbox.dead_letter).
TRIAGE_RENEW_AT_MOST_EVERY = timedelta(days=1)


def _born(r: Referral) -> str:
    return r.born.isoformat() if r.born else "—"


def source_key(source: str, made_by: str) -> str:
    """What a referral is known by (the Matrix event id): within its column, a digest past it."""
    key = f"{source}:{made_by}"
    return key if len(key) <= 255 else f"{source}:#" + hashlib.sha256(made_by.encode()).hexdigest()


def new_notice(r: Referral, also_pending: Sequence[str] = (), followed_before: str | None = None) -> Notify:
    """`referral.new` in the triage room: the name only inside this encrypted message. Flags a
    person already followed, or already referred and still pending (`also_pending`), or followed
    before in a file now closed (`followed_before`: a new file may be opened)."""
    duplicate: Any = ""
    if r.duplicate_of:
        duplicate = {"key": "referral.duplicate", "params": {"case": r.duplicate_of}}
    elif also_pending:
        duplicate = {"key": "referral.also_pending", "params": {"refs": ", ".join(also_pending)}}
    elif followed_before:
        duplicate = {"key": "referral.previously", "params": {"case": followed_before}}
    return Notify("referral.new", "", "referral.new", {
        "ref": r.ref, "name": r.name, "born": _born(r), "source": {"key": f"referral.source.{r.source.value}"},
        "referrer": r.referrer, "why": r.reason, "gp": r.gp or "—",
        "ids": ", ".join(i.label() for i in r.identifiers) or "—", "duplicate": duplicate,
    }, desk=TRIAGE_DESK)


def new_key(ref: str) -> str:
    """Outbox key prefix of a referral's `referral.new` notice (redacted on erasure)."""
    return f"referral-new:{ref}"


def decision_key(ref: str) -> str:
    """Outbox key prefix of a referral's `referral.decision` notice (redacted on erasure)."""
    return f"referral-decision:{ref}"


@dataclass(frozen=True)
class Received:
    referral: Referral
    new: bool  # False: this source key was already received (a replay, a resend)


def _differs(known: Referral, draft: Draft) -> bool:
    """True when `draft` says something else than the referral kept under its source key."""
    try:
        name, reason = persons.check_display_name(draft.name), referral.check_reason(draft.reason)
    except DomainError:
        return True
    ids = {persons.identifier_key(i) for i in draft.identifiers}
    return (name, draft.born, reason, ids, draft.gp) != (
        known.name, known.born, known.reason, {persons.identifier_key(i) for i in known.identifiers}, known.gp)


async def receive(uow: UnitOfWork, draft: Draft, *, source_key: str, now: datetime, today: date,
                  allowed_servers: tuple[str, ...], bot_user: str) -> Received:
    """Check, number and store a referral, and enqueue its `referral.new` notice to the triage
    room in the same unit of work (under `new_key`, so that erasure can redact it). `today` is
    the territory's date (a birth date "in the future" is judged on it, SPEC §5)."""
    known = await uow.referrals.by_source_key(source_key)
    if known is not None:
        if known.erased_at is None and _differs(known, draft):
            # The same request identifier for another content (a corrected birth date, another
            # person): answering "already received" would drop it silently.
            raise DomainError("error.referral_conflict", ref=known.ref)
        return Received(known, False)
    name = persons.check_display_name(draft.name)
    if draft.born is None:
        raise DomainError("error.referral_born_missing")
    persons.check_birth_date(draft.born, today)
    reason = referral.check_reason(draft.reason)
    persons.check_new_identifiers((), draft.identifiers)
    if draft.gp is not None:
        if team.server_of(draft.gp) not in allowed_servers:
            raise DomainError("error.server_not_allowed", user=draft.gp, servers=", ".join(allowed_servers))
        if draft.gp == bot_user:
            raise DomainError("error.member_is_bot", user=draft.gp)
    # The same person however an authority is spelled (`chu-x` / `CHU-X`, an OID bare or urn:oid:).
    wanted = {persons.identifier_key(i) for i in draft.identifiers}
    also_pending = [p.ref for p in await uow.referrals.pending()
                    if wanted & {persons.identifier_key(i) for i in p.identifiers}]
    followed = {}
    followed_before: str | None = None
    for ident in draft.identifiers:
        owner = await uow.persons.owner_of(ident)
        if owner is not None:
            followed[ident] = owner
        elif followed_before is None:
            followed_before = await uow.persons.closed_holder_of(ident)  # closed: no obstacle, said
    # Numbered in the territory's year, as case references are (SPEC §5): not the UTC one.
    ref = referral.referral_ref(today.year, await uow.referrals.next_sequence(today.year))
    r = referral.new_referral(ref=ref, source=draft.source, now=now, referrer=draft.referrer, name=name,
                              born=draft.born, reason=reason, identifiers=draft.identifiers, gp=draft.gp,
                              referrer_room=draft.referrer_room, followed=followed)
    await uow.referrals.add(r, source_key)
    log.info("referral %s received from %s%s", ref, draft.source.value,
             " (already followed)" if r.duplicate_of else "")
    await enqueue(uow, new_key(ref), [new_notice(r, also_pending, followed_before)], now)
    return Received(r, True)


async def _locked(uow: UnitOfWork, ref: str) -> Referral:
    r = await uow.referrals.lock(referral.check_ref(ref))
    if r is None:
        raise DomainError("error.referral_unknown", ref=ref)
    return r


async def record_criteria(uow: UnitOfWork, ref: str, pairs: Sequence[str]) -> Referral:
    r = referral.record_criteria(await _locked(uow, ref), referral.parse_criteria(pairs))
    await uow.referrals.save(r)
    return r


def _decision_key_in(ref: str, room_id: str) -> str:
    """Outbox key prefix of a decision posted again in a referrer's later room (`adopt_referrer_room`)."""
    return f"{decision_key(ref)}@{room_id}"


async def give_up_referrer_room(uow: UnitOfWork, room_id: str) -> None:
    """A referrer's room the bot no longer posts in (they left it or removed the bot, someone
    else entered it): their referrals wait for the next direct room they open, and a decision
    still on its way to this one is set aside — it is told there instead (`adopt_referrer_room`),
    never dropped, never reported as a failure."""
    await uow.referrals.forget_referrer_room(room_id)
    if await uow.outbox.set_aside_in_room(room_id, "referral.decision", "referrer room given up; told in their next"):
        log.info("a referral decision on its way to a room given up waits for the referrer's next room")


async def _decision(uow: UnitOfWork, r: Referral, message: str, params: dict[str, Any], now: datetime,
                    key: str | None = None) -> int:
    """`referral.decision` to the referrer's direct room, m.text mentioning them (SPEC §5),
    enqueued under `decision_key` so that erasure can redact it (and never posted twice).

    Without a room — a FHIR referrer reads the ServiceRequest's status; a Matrix referrer whose
    room was given up (someone else entered it) is told in the next direct room they open
    with the bot (`adopt_referrer_room`)."""
    if r.referrer_room is None:
        return 0
    return await enqueue(uow, key or decision_key(r.ref), [Notify(
        "referral.decision", "", message, {"ref": r.ref, "name": r.name, **params}, mentions=(r.referrer,),
        room_id=r.referrer_room)], now)


async def _tell_decision(uow: UnitOfWork, r: Referral, now: datetime, key: str | None = None) -> int:
    """The decision already taken on `r`, to its referrer's room (0 when posted before)."""
    if r.status is referral.Status.ACCEPTED:
        person = await uow.persons.get(r.case_ref) if r.case_ref else None
        # Who follows the person now (the referent may have changed since the decision).
        cm = person.referent if person is not None else r.decided_by or "—"
        return await _decision(uow, r, "referral.accepted", {"cm": cm}, now, key)
    where: Any = {"key": "referral.refer_to", "params": {"service": r.refer_to}} if r.refer_to else ""
    return await _decision(uow, r, "referral.refused", {"why": r.refusal, "where": where}, now, key)


async def adopt_referrer_room(db: Database, room_id: str, user_id: str, now: datetime) -> int:
    """A direct room a referrer opened with the bot (SPEC §9): their pending referrals will be
    answered there, and a decision taken while they had no room (their earlier one was given
    up) is posted there now — the referrer is always told, once. Returns the notices enqueued."""
    told = 0
    async with db.unit() as uow:
        await uow.referrals.add_referrer_room(room_id, user_id)
        for r in await uow.referrals.decided_without_room(user_id):
            first = await uow.outbox.state_of(f"{decision_key(r.ref)}:0")
            if first in ("done", "pending"):
                continue  # told in the room given up, before it was (or still on its way there)
            # Never enqueued (decided while they had no room), or set aside (give_up_referrer_room).
            key = None if first is None else _decision_key_in(r.ref, room_id)
            with_room = replace(r, referrer_room=room_id)
            if await _tell_decision(uow, with_room, now, key):
                await uow.referrals.save(with_room)  # erasure redacts it in this room
                told += 1
    if told:
        log.info("%d referral decision(s) posted in a referrer's new room", told)
    return told


@dataclass(frozen=True)
class Accepted:
    referral: Referral
    case_ref: str
    referent: str
    warnings: list[str]
    effects: list[Effect]


async def accept(uow: UnitOfWork, ref: str, *, by: str, requested: str | None, case_managers: Sequence[str],
                 limits: caseload.Limits, allowed_servers: tuple[str, ...], bot_user: str,
                 now: datetime, tz: ZoneInfo) -> Accepted:
    """Open the file exactly as `!new` does (cases.open_case), the chosen case manager as referent;
    invite the GP named in the referral; tell the referrer who now follows the person."""
    r = await _locked(uow, ref)
    if r.duplicate_of is not None and await uow.persons.owner_of_any(r.identifiers) is None:
        # Flagged "already followed" on arrival, and that file has been closed since (or its
        # identifiers moved): nothing stands in the way now; open_case still refuses an open one.
        r = replace(r, duplicate_of=None)
    referral.check_acceptable(r)
    # The monthly intake and the new file's year are the territory's (SPEC §5).
    loads = {cm: await cases.load_caseload(uow, cm, now, tz) for cm in dict.fromkeys(case_managers)}
    referent, _ = referral.choose_case_manager(loads, limits, requested)
    person, warnings, effects = await cases.open_case(
        uow, referent=referent, name=r.name, born=r.born, identifiers=r.identifiers, limits=limits, now=now, tz=tz)
    case_ref = person.case_ref
    effects.append(Notify("referral.opened", case_ref, "referral.opened",
                          {"ref": r.ref, "referrer": r.referrer or "—", "why": r.reason}))
    if r.gp is not None and r.gp != referent:
        await consent.check_can_join(uow, case_ref, r.gp, Role.GP)  # consent rules apply (a GP needs none)
        member, invited = team.add_member(await uow.team.members(case_ref), case_ref, r.gp, Role.GP, None,
                                          by=by, now=now, allowed_servers=allowed_servers, bot_user=bot_user)
        await uow.team.add(case_ref, member)
        effects.extend(invited)
    decided = referral.accept(r, case_ref=case_ref, by=by, now=now)
    await uow.referrals.save(decided)
    await _decision(uow, decided, "referral.accepted", {"cm": referent}, now)
    return Accepted(decided, case_ref, referent, warnings, effects)


async def refuse(uow: UnitOfWork, ref: str, *, why: str, refer_to: str | None, by: str,
                 now: datetime) -> Referral:
    decided = referral.refuse(await _locked(uow, ref), why=why, refer_to=refer_to, by=by, now=now)
    await uow.referrals.save(decided)
    await _tell_decision(uow, decided, now)
    return decided


async def pending_lines(uow: UnitOfWork, now: datetime) -> list[dict[str, Any]]:
    lines = []
    for r in await uow.referrals.pending():
        crit = r.criteria
        lines.append({"key": "referral.line", "params": {
            "ref": r.ref, "name": r.name, "days": referral.age_days(r, now),
            "source": {"key": f"referral.source.{r.source.value}"},
            "criteria": " ".join(f"{n}={'?' if v is None else ('✓' if v else '✗')}" for n, v in
                                 (("A", crit.autonomy), ("B", crit.care), ("C", crit.coordination))),
            "duplicate": {"key": "referral.duplicate", "params": {"case": r.duplicate_of}} if r.duplicate_of else "",
        }})
    return lines


async def ensure_triage(db: Database, members: Sequence[str], now: datetime) -> int:
    """At start: the triage room exists once (it survives restarts), every configured
    coordinator and case manager is invited to it and whoever is no longer configured removed;
    returns the number of effects enqueued."""
    wanted = list(dict.fromkeys(members))
    if not wanted:
        return 0
    async with db.unit() as uow:
        created = await uow.desks.ensure(TRIAGE_DESK, "triage")
        known: list[str] = json.loads(await uow.kv.get(TRIAGE_MEMBERS_KEY) or "[]")
        effects: list[Effect]
        if created:
            effects = [CreateTriage(tuple(wanted)), Notify("command.reply", "", "triage.welcome", {},
                                                          desk=TRIAGE_DESK)]
            key = "triage:create"
        else:
            # Rights follow the configuration: a coordinator or case manager no longer named
            # leaves the room (new referrals carry names), a newly named one is invited.
            effects = [InviteToDesk(TRIAGE_DESK, user) for user in wanted if user not in known]
            effects += [KickFromDesk(TRIAGE_DESK, user, "triage.removed") for user in known if user not in wanted]
            key = f"triage:members:{now.isoformat()}"
        await uow.kv.set(TRIAGE_MEMBERS_KEY, json.dumps(sorted(wanted)))
        return await enqueue(uow, key, effects, now)


def reposted_key(ref: str, generation: int) -> str:
    """Outbox key prefix of a referral's `referral.new` posted again in the triage room made anew
    for the `generation`-th time (`renew_triage`)."""
    return f"{new_key(ref)}@{generation}"


async def renew_triage(uow: UnitOfWork, room_id: str, now: datetime) -> bool:
    """The bot lost `room_id`, the triage room (removed from it, the room deleted): open a new one
    with the members the configuration names, carry there what was waiting for the old one, and
    post every pending referral again whose notice went to the lost room (or was set aside), so
    that none is forgotten. Once per loss (the loss is claimed: a sync and a failed send, two
    workers, a restart see it once) and at most once per TRIAGE_RENEW_AT_MOST_EVERY; refused —
    False — otherwise, and what is then posted there is reported to the pilots."""
    desk = await uow.desks.owner(room_id)
    if desk is None or desk[0] != TRIAGE_DESK:
        return False
    last = await uow.kv.get(TRIAGE_RENEWED_KEY)
    if last is not None and now - datetime.fromisoformat(last) < TRIAGE_RENEW_AT_MOST_EVERY:
        log.warning("the triage room was lost again within %s of its renewal; not made anew",
                    TRIAGE_RENEW_AT_MOST_EVERY)
        return False
    cause = fit_key(f"triage-lost:{room_id}", 255)
    if not await uow.events.claim(cause, now):
        return False
    members: list[str] = json.loads(await uow.kv.get(TRIAGE_MEMBERS_KEY) or "[]")
    generation = int(await uow.kv.get(TRIAGE_GENERATION_KEY) or "0") + 1
    await uow.kv.set(TRIAGE_GENERATION_KEY, str(generation))
    await uow.kv.set(TRIAGE_RENEWED_KEY, now.isoformat())
    await uow.desks.set_room(TRIAGE_DESK, None)
    await uow.outbox.follow_desk(room_id, TRIAGE_DESK)  # replies still waiting go to the new room
    pending = await uow.referrals.pending()
    again = [r for r in pending if await _posted_or_set_aside(uow, r.ref, generation)]
    await enqueue(uow, fit_key(cause), [
        CreateTriage(tuple(members), lost_room=room_id),
        Notify("command.reply", "", "triage.welcome", {}, desk=TRIAGE_DESK),
        Notify("command.reply", "", "triage.renewed", {"count": len(again)}, desk=TRIAGE_DESK),
    ], now)
    for r in again:
        await enqueue(uow, reposted_key(r.ref, generation), [new_notice(r)], now)
    log.warning("the bot lost the triage room; a new one is opened, %d pending referral(s) posted again",
                len(again))
    return True


async def _posted_or_set_aside(uow: UnitOfWork, ref: str, generation: int) -> bool:
    """True when the latest `referral.new` of `ref` is no longer waiting (sent to the room now
    lost, or set aside): it must be posted again. One still waiting goes to the new room."""
    for g in range(generation - 1, 0, -1):
        state = await uow.outbox.state_of(f"{reposted_key(ref, g)}:0")
        if state is not None:
            return state != "pending"
    return await uow.outbox.state_of(f"{new_key(ref)}:0") != "pending"


async def _latest_new_key(uow: UnitOfWork, ref: str) -> str:
    """The key of the `referral.new` of `ref` that is in the current triage room: its latest post."""
    generation = int(await uow.kv.get(TRIAGE_GENERATION_KEY) or "0")
    for g in range(generation, 0, -1):
        if await uow.outbox.state_of(f"{reposted_key(ref, g)}:0") is not None:
            return f"{reposted_key(ref, g)}:0"
    return f"{new_key(ref)}:0"


async def _decision_notice_key(uow: UnitOfWork, r: Referral) -> str | None:
    """The key of the decision posted in `r.referrer_room` (its first post, or one posted again
    there when the referrer opened it after losing another)."""
    if r.referrer_room is None:
        return None
    again = f"{_decision_key_in(r.ref, r.referrer_room)}:0"
    return again if await uow.outbox.state_of(again) is not None else f"{decision_key(r.ref)}:0"


def erasure_effects(r: Referral, new_notice_key: str | None = None, decision_notice_key: str | None = None,
                    ) -> list[Effect]:
    """Redact what the bot posted with the person's name: the triage notice (`new_notice_key`,
    its latest post, in the current triage room: the bot is in no lost one) and the decision
    (`decision_notice_key`, in the referrer's room)."""
    effects: list[Effect] = [Redact(new_notice_key or f"{new_key(r.ref)}:0", desk=TRIAGE_DESK)]
    if r.referrer_room is not None:
        effects.append(Redact(decision_notice_key or f"{decision_key(r.ref)}:0", room_id=r.referrer_room))
    return effects


class ReferralSweeper:
    """Daily: remind undecided referrals in the triage room; erase refused ones' personal data."""

    def __init__(self, db: Database, reminder_days: int = referral.REMINDER_DAYS,
                 erase_days: int = referral.ERASE_DAYS, on_enqueued: Callable[[], None] | None = None,
                 tz: ZoneInfo | None = None) -> None:
        self.db = db
        self.tz = tz or ZoneInfo(DEFAULT_TIMEZONE)  # reminders and erasure follow the territory's days
        self.reminder_days = reminder_days
        self.erase_days = erase_days
        self.on_enqueued = on_enqueued or (lambda: None)

    async def sweep(self, now: datetime) -> int:
        today = local_date(now, self.tz)
        done = 0
        async with self.db.unit() as uow:
            due = [r for r in await uow.referrals.pending()
                   if referral.reminder_due(r, now, today, self.reminder_days, self.tz)]
            if due:
                lines = [{"key": "referral.reminder_line",
                          "params": {"ref": r.ref, "days": referral.age_days(r, now)}} for r in due]
                notice = Notify("referral.reminder", "", "referral.reminder", {"refs": lines,
                                "days": self.reminder_days}, desk=TRIAGE_DESK)
                if await enqueue(uow, f"referral-reminder:{today.isoformat()}", [notice], now):
                    for r in due:
                        await uow.referrals.save(replace(r, reminded_on=today))
                    done += 1
            for r in await uow.referrals.refused_unerased(now - timedelta(days=self.erase_days)):
                if referral.erase_due(r, now, self.erase_days):
                    await enqueue(uow, f"referral-erase:{r.ref}", erasure_effects(
                        r, await _latest_new_key(uow, r.ref), await _decision_notice_key(uow, r)), now)
                    await uow.referrals.save(referral.erase(r, now))
                    done += 1
        if done:
            self.on_enqueued()
        return done


async def report_section(uow: UnitOfWork, start: date, end: date, tz: tzinfo) -> dict[str, int]:
    return referral.figures(await uow.referrals.count_rows(), start, end, tz)


async def export_section(uow: UnitOfWork, case_ref: str) -> Any:
    """The referral that opened this file, for the person's right of access (None if opened by `!new`)."""
    r = await uow.referrals.opening(case_ref)
    if r is None:
        return None
    return {"ref": r.ref, "source": r.source.value, "received_at": r.received_at.isoformat(),
            "referrer": r.referrer, "name": r.name, "born": r.born.isoformat() if r.born else None,
            "reason": r.reason, "identifiers": [i.label() for i in r.identifiers], "gp": r.gp,
            "criteria": {"autonomy": r.criteria.autonomy, "care": r.criteria.care,
                         "coordination": r.criteria.coordination},
            "decided_at": r.decided_at.isoformat() if r.decided_at else None, "decided_by": r.decided_by}


class ReferralIntake:
    """Referrals that arrive outside a command (FHIR): one unit of work each, keyed by source."""

    def __init__(self, db: Database, clock: Clock, allowed_servers: tuple[str, ...], bot_user: str,
                 on_enqueued: Callable[[], None] | None = None, open_: bool = True) -> None:
        self.db = db
        self.open = open_  # False: no triage team configured, referrals are not taken
        self.clock = clock
        self.allowed_servers = allowed_servers
        self.bot_user = bot_user
        self.on_enqueued = on_enqueued or (lambda: None)

    async def receive(self, draft: Draft, source_key: str) -> tuple[str, bool]:
        """(reference, new). DomainError for content the domain refuses; nothing is kept then."""
        now = self.clock.now()
        async with self.db.unit() as uow:
            got = await receive(uow, draft, source_key=source_key, now=now, today=self.clock.today(),
                                allowed_servers=self.allowed_servers, bot_user=self.bot_user)
            if got.new:
                await uow.audit.record(now, f"fhir:{draft.referrer}"[:255], "refer", None, {"ref": got.referral.ref})
        if got.new:
            self.on_enqueued()
        return got.referral.ref, got.new

    async def status(self, ref: str) -> Referral | None:
        async with self.db.unit() as uow:
            return await uow.referrals.lock(referral.check_ref(ref))
