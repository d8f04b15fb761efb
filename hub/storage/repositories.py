"""Repositories: take and return domain objects; the rows stay inside hub/storage."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import Integer, Table, Text, bindparam, delete, exists, func, insert, literal, select, union_all, update
from sqlalchemy import cast as sa_cast
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.domain.effects import TRIAGE_DESK
from hub.domain.persons import Identifier, Person, identifier_key
from hub.domain.settings import Setting
from hub.domain.team import Member, Role
from hub.storage.models import (
    AuditRow,
    DeskRow,
    IdentifierRow,
    IntakeDeadLetterRow,
    KeyValueRow,
    MemberRow,
    OutboxRow,
    PersonRow,
    ProcessedEventRow,
)
from hub.storage.models_referral import ReferrerRoomRow
from hub.storage.once import dialect_insert as _dialect_insert
from hub.storage.once import insert_once, insert_or_update, on_sqlite


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _person(row: PersonRow, identifiers: Sequence[tuple[str, str]]) -> Person:
    return Person(
        case_ref=row.case_ref,
        display_name=row.display_name,
        referent=row.referent,
        opened_at=_aware(row.opened_at) or row.opened_at,
        birth_date=row.birth_date,
        identifiers=tuple(Identifier(authority, value) for authority, value in identifiers),
        room_id=row.room_id,
        closed_at=_aware(row.closed_at),
        close_reason=row.close_reason,
        setting=Setting(row.setting),
        setting_since=_aware(row.setting_since),
        hospital_return=row.hospital_return_on,
    )


async def next_in_sequence(session: AsyncSession, key: str) -> int:
    """The next value (1, 2, …) of the counter kept under `key` in kv, its row locked for the
    transaction so two units never draw the same number (case and referral references)."""
    result = await session.execute(select(KeyValueRow).where(KeyValueRow.key == key).with_for_update())
    row = result.scalar_one_or_none()
    if row is None:
        session.add(KeyValueRow(key=key, value="1"))
        await session.flush()
        return 1
    row.value = str(int(row.value) + 1)
    await session.flush()
    return int(row.value)


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


class PersonRepo:
    """The one owner of the person row: every write to it, and its lock, go through here."""

    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def lock(self, case_ref: str) -> None:
        """Serialise the changes to one file — plan, consent, handovers, closure, alerts — within
        this unit of work: a PostgreSQL row lock; on SQLite the unit already holds the database's
        write lock from its BEGIN IMMEDIATE (hub/storage/database.py), taken before its first read,
        so there is nothing to send (SQLite ignores FOR UPDATE: the statement was a round trip
        to the driver's thread for nothing)."""
        if on_sqlite(self.s):
            return
        await self.s.execute(select(PersonRow.id).where(PersonRow.case_ref == case_ref).with_for_update())

    async def _row(self, case_ref: str) -> PersonRow | None:
        result = await self.s.execute(select(PersonRow).where(PersonRow.case_ref == case_ref))
        return result.scalar_one_or_none()

    async def _with_identifiers(self, *where: Any, lock: bool = False) -> list[Person]:
        """Persons and their identifiers in one statement (an outer join: a person may have none),
        ordered by reference; `lock`: their rows locked for the unit (PostgreSQL)."""
        query = (select(PersonRow, IdentifierRow.authority, IdentifierRow.value)
                 .outerjoin(IdentifierRow, IdentifierRow.person_id == PersonRow.id)
                 .where(*where).order_by(PersonRow.case_ref, IdentifierRow.id))
        if lock and not on_sqlite(self.s):
            query = query.with_for_update(of=PersonRow)
        rows: dict[int, tuple[PersonRow, list[tuple[str, str]]]] = {}
        for row, authority, value in await self.s.execute(query):
            idents = rows.setdefault(row.id, (row, []))[1]
            if authority is not None:
                idents.append((authority, value))
        return [_person(row, idents) for row, idents in rows.values()]

    async def get(self, case_ref: str) -> Person | None:
        found = await self._with_identifiers(PersonRow.case_ref == case_ref)
        return found[0] if found else None

    async def open_with_identifier_values(self, values: Collection[str], *, lock: bool = False) -> list[Person]:
        """Open files holding an identifier with one of these values (any authority: the caller
        matches authorities, hub.domain.identity), with all their identifiers, by reference;
        `lock`: each file locked as `lock` does, in reference order (no two units deadlock)."""
        wanted = sorted({v.strip() for v in values if v.strip()})
        if not wanted:
            return []
        holders = select(IdentifierRow.person_id).where(IdentifierRow.value.in_(wanted))
        return await self._with_identifiers(PersonRow.id.in_(holders), PersonRow.closed_at.is_(None), lock=lock)

    async def by_room(self, room_id: str) -> Person | None:
        found = await self._with_identifiers(PersonRow.room_id == room_id)
        return found[0] if found else None

    async def add(self, person: Person) -> None:
        row = PersonRow(
            case_ref=person.case_ref, display_name=person.display_name,
            birth_date=person.birth_date, referent=person.referent, opened_at=person.opened_at,
            setting=person.setting.value,
        )
        self.s.add(row)
        await self.s.flush()
        await self.add_identifiers(person.case_ref, person.identifiers)

    async def add_identifiers(self, case_ref: str, identifiers: Sequence[Identifier]) -> None:
        row = await self._row(case_ref)
        assert row is not None
        for ident in identifiers:
            self.s.add(IdentifierRow(person_id=row.id, authority=ident.authority, value=ident.value))
        await self.s.flush()

    async def _holders(self, identifier: Identifier, *, closed: bool) -> list[tuple[str, int]]:
        """(case_ref, identifier row id) of the open (or closed) files holding this identifier
        however its authority was spelled when recorded (`identifier_key`: namespace case, OID
        bare or `urn:oid:`, URL trailing slash)."""
        state = PersonRow.closed_at.is_not(None) if closed else PersonRow.closed_at.is_(None)
        result = await self.s.execute(
            select(PersonRow.case_ref, IdentifierRow.id, IdentifierRow.authority)
            .join(IdentifierRow, IdentifierRow.person_id == PersonRow.id)
            .where(IdentifierRow.value == identifier.value, state).order_by(PersonRow.id)
        )
        wanted = identifier_key(identifier)
        return [(ref, row_id) for ref, row_id, authority in result.all()
                if identifier_key(Identifier(authority, identifier.value)) == wanted]

    async def owner_of(self, identifier: Identifier) -> str | None:
        """The open file holding this identifier (see `_holders`); a closed file holds none."""
        holders = await self._holders(identifier, closed=False)
        return holders[0][0] if holders else None

    async def owner_of_any(self, identifiers: Sequence[Identifier]) -> str | None:
        """The open file holding one of these identifiers, if any."""
        for identifier in identifiers:
            if (owner := await self.owner_of(identifier)) is not None:
                return owner
        return None

    async def closed_holder_of(self, identifier: Identifier) -> str | None:
        """The closed file that still holds this identifier, if any (the person was followed before)."""
        holders = await self._holders(identifier, closed=True)
        return holders[0][0] if holders else None

    async def release_closed(self, identifier: Identifier) -> str | None:
        """Take this identifier off the closed file holding it, so that a new file can hold it
        (a person followed again after their file was closed); returns that file's case_ref."""
        holders = await self._holders(identifier, closed=True)
        if not holders:
            return None
        await self.s.execute(delete(IdentifierRow).where(IdentifierRow.id.in_([row for _ref, row in holders])))
        return holders[0][0]

    async def set_room(self, case_ref: str, room_id: str) -> None:
        await self.s.execute(update(PersonRow).where(PersonRow.case_ref == case_ref).values(room_id=room_id))

    async def set_setting(self, case_ref: str, setting: Setting, since: datetime,
                          hospital_return: date | None = None) -> None:
        values: dict[str, Any] = {"setting": setting.value, "setting_since": since}
        if hospital_return is not None:
            values["hospital_return_on"] = hospital_return
        await self.s.execute(update(PersonRow).where(PersonRow.case_ref == case_ref).values(**values))

    async def restore_setting(self, case_ref: str, setting: Setting, since: datetime | None,
                              hospital_return: date | None) -> None:
        """Put back a setting exactly as it was (a cancelled move): date and hospital return included."""
        await self.s.execute(update(PersonRow).where(PersonRow.case_ref == case_ref).values(
            setting=setting.value, setting_since=_utc_or_none(since), hospital_return_on=hospital_return))
        await self.s.flush()

    async def set_referent(self, case_ref: str, referent: str) -> None:
        await self.s.execute(update(PersonRow).where(PersonRow.case_ref == case_ref).values(referent=referent))

    async def close_file(self, case_ref: str, at: datetime, reason: str) -> None:
        await self.s.execute(update(PersonRow).where(PersonRow.case_ref == case_ref)
                             .values(closed_at=at, close_reason=reason))

    async def count_active(self, referent: str) -> int:
        result = await self.s.execute(
            select(func.count()).select_from(PersonRow)
            .where(PersonRow.referent == referent, PersonRow.closed_at.is_(None))
        )
        return int(result.scalar_one())

    async def count_opened_since(self, referent: str, since: datetime) -> int:
        result = await self.s.execute(
            select(func.count()).select_from(PersonRow)
            .where(PersonRow.referent == referent, PersonRow.opened_at >= since)
        )
        return int(result.scalar_one())

    async def active_refs(self, referent: str) -> list[str]:
        result = await self.s.execute(
            select(PersonRow.case_ref)
            .where(PersonRow.referent == referent, PersonRow.closed_at.is_(None))
            .order_by(PersonRow.case_ref)
        )
        return list(result.scalars())

    async def next_sequence(self, year: int) -> int:
        """Per-year counter for R-YYYY-NNNN, locked so two openings never share a number."""
        return await next_in_sequence(self.s, f"case_seq:{year}")


class TeamRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def _person_id(self, case_ref: str) -> int:
        result = await self.s.execute(select(PersonRow.id).where(PersonRow.case_ref == case_ref))
        return int(result.scalar_one())

    async def members(self, case_ref: str) -> list[Member]:
        result = await self.s.execute(
            select(MemberRow).join(PersonRow, PersonRow.id == MemberRow.person_id)
            .where(PersonRow.case_ref == case_ref).order_by(MemberRow.id)
        )
        return [
            Member(user_id=r.user_id, role=Role(r.role), since=_aware(r.since) or r.since,
                   organisation=r.organisation, until=_aware(r.until), end_reason=r.end_reason)
            for r in result.scalars()
        ]

    async def add(self, case_ref: str, member: Member) -> None:
        self.s.add(MemberRow(
            person_id=await self._person_id(case_ref), user_id=member.user_id, role=member.role.value,
            organisation=member.organisation, since=member.since,
        ))
        await self.s.flush()

    async def end(self, case_ref: str, member: Member) -> None:
        await self.s.execute(
            update(MemberRow)
            .where(MemberRow.person_id == await self._person_id(case_ref),
                   MemberRow.user_id == member.user_id, MemberRow.until.is_(None))
            .values(until=member.until, end_reason=member.end_reason)
        )

    async def count_without_gp(self, refs: Sequence[str]) -> int:
        if not refs:
            return 0
        result = await self.s.execute(
            select(PersonRow.case_ref).join(MemberRow, MemberRow.person_id == PersonRow.id)
            .where(PersonRow.case_ref.in_(refs), MemberRow.role == Role.GP.value, MemberRow.until.is_(None))
        )
        with_gp = set(result.scalars())
        return len(set(refs) - with_gp)


class DeskRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def ensure(self, user_id: str, role: str) -> bool:
        """Record a desk to open; True when it is new."""
        if await self.s.get(DeskRow, user_id) is not None:
            return False
        self.s.add(DeskRow(user_id=user_id, role=role))
        await self.s.flush()
        return True

    async def set_room(self, user_id: str, room_id: str | None) -> None:
        """The desk's room; None while a new one is to be created (the outbox sets it)."""
        await self.s.execute(update(DeskRow).where(DeskRow.user_id == user_id).values(room_id=room_id))

    async def all(self) -> list[tuple[str, str, str | None]]:
        """Every desk as (user_id, role, room_id or None while not created)."""
        result = await self.s.execute(select(DeskRow).order_by(DeskRow.user_id))
        return [(r.user_id, r.role, r.room_id) for r in result.scalars()]

    async def set_role(self, user_id: str, role: str) -> None:
        await self.s.execute(update(DeskRow).where(DeskRow.user_id == user_id).values(role=role))

    async def remove(self, user_id: str) -> None:
        await self.s.execute(delete(DeskRow).where(DeskRow.user_id == user_id))

    async def owner(self, room_id: str) -> tuple[str, str] | None:
        result = await self.s.execute(select(DeskRow).where(DeskRow.room_id == room_id))
        row = result.scalar_one_or_none()
        return None if row is None else (row.user_id, row.role)

    async def room_of(self, user_id: str) -> str | None:
        """As committed now (not as this unit of work first read it: another may have moved it)."""
        row = await self.s.get(DeskRow, user_id, populate_existing=True)
        return None if row is None else row.room_id

    async def exists(self, user_id: str) -> bool:
        return await self.s.get(DeskRow, user_id) is not None


OUTBOX_KEY_MAX = 128  # outbox.key String(128)


def fit_key(key: str, limit: int = OUTBOX_KEY_MAX) -> str:
    """A key as stored in a column of `limit` characters (an outbox key by default): unchanged
    when it fits, else a readable head and the digest of the whole (keys embed event and room
    ids, up to 255 characters each). The digest takes half the column, at most 64 hex digits."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:min(64, limit // 2)]
    return key[:limit - len(digest) - 1] + "#" + digest


class OutboxEntry:
    __slots__ = ("action", "attempts", "case_ref", "created_at", "id", "key", "lane", "payload")

    def __init__(self, row: OutboxRow) -> None:
        self.id = row.id
        self.key = row.key
        self.action = row.action
        self.case_ref = row.case_ref
        self.payload: dict[str, Any] = dict(row.payload)
        self.attempts = row.attempts
        self.lane = row.lane or ""
        self.created_at = _aware(row.created_at) or row.created_at


def cause_of(key: str) -> str:
    """What enqueued an entry: its key without the effect's index (`cmd:$event`, `alert:12`)."""
    return key.rsplit(":", 1)[0]


@dataclass(frozen=True)
class RoomOwners:
    """What Relais' records say a Matrix room is: a desk (its owner and role), a referrer's
    direct room (the referrer), a person's room (the case reference) — normally one of them."""

    desk: tuple[str, str] | None = None
    referrer: str | None = None
    case_ref: str | None = None

    @property
    def lane(self) -> str | None:
        """The outbox lane of an entry naming this room (`lane_of`): a person's room, else a desk."""
        if self.case_ref is not None:
            return "case:" + self.case_ref
        if self.desk is not None:
            return "desk:" + self.desk[0]
        return None


class RoomRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def owners(self, room_id: str) -> RoomOwners:
        """Desk, referrer and person of a room, in one statement (a command reads them all)."""
        found = await self.s.execute(union_all(
            select(literal("desk").label("kind"), DeskRow.user_id.label("name"), DeskRow.role.label("role"))
            .where(DeskRow.room_id == room_id),
            select(literal("referrer"), ReferrerRoomRow.user_id, literal("")).where(ReferrerRoomRow.room_id == room_id),
            select(literal("case"), PersonRow.case_ref, literal("")).where(PersonRow.room_id == room_id)))
        desk: tuple[str, str] | None = None
        referrer = case_ref = None
        for kind, name, role in found:
            if kind == "desk":
                desk = (str(name), str(role))
            elif kind == "referrer":
                referrer = str(name)
            else:
                case_ref = str(name)
        return RoomOwners(desk, referrer, case_ref)


def lane_of(action: str, case_ref: str | None, payload: dict[str, Any], room_lane: str | None = None) -> str:
    """The lane of an outbox entry: the room it acts in, named before the room exists.

    `case:<ref>` (a person's room: its creation, invites, notices), `desk:<user>` (a desk: its
    creation and its notices), `room:<id>` (any other room). `room_lane` is the lane of an
    explicit room id when that room is a known case room or desk, so a command reply keeps its
    place among the other notices of the same room. A desk made anew in place of a lost one
    (`lost_room`) is made in `desk-new:<user>`, ahead of the notices already waiting in its desk's
    lane (the outbox holds them until it is made)."""
    if action == "create_desk":
        return ("desk-new:" if payload.get("lost_room") else "desk:") + str(payload.get("user_id"))
    if action == "create_triage":  # its welcome, invites and notices name the desk TRIAGE_DESK
        return ("desk-new:" if payload.get("lost_room") else "desk:") + TRIAGE_DESK
    if payload.get("room_id"):
        return room_lane or "room:" + str(payload["room_id"])
    if payload.get("desk"):
        return "desk:" + str(payload["desk"])
    return "case:" + (case_ref or "")


class _OutboxQueries:
    """The outbox's per-notice queries, built once: an SQLAlchemy expression with an aliased
    table costs more to build than the notice costs to send (py-spy, bench/alerts.py), and a
    statement built once also keeps its cache key (issue 18)."""

    def __init__(self) -> None:
        now = bindparam("now", type_=OutboxRow.__table__.c.not_before.type)
        earlier = aliased(OutboxRow)
        # No earlier entry of the same cause is still pending (the class docstring of OutboxRepo).
        free = ~exists().where(earlier.state == "pending", earlier.cause == OutboxRow.cause, earlier.id < OutboxRow.id)
        due = OutboxRow.not_before.is_(None) | (OutboxRow.not_before <= now)
        heads = (select(func.min(OutboxRow.id).label("id")).where(OutboxRow.state == "pending")
                 .group_by(OutboxRow.lane).subquery())
        self.due_heads = (select(OutboxRow).join(heads, heads.c.id == OutboxRow.id)
                          .where(due, free, OutboxRow.lane.not_in(bindparam("busy", expanding=True)))
                          .order_by(OutboxRow.id).limit(bindparam("limit")))
        first = (select(func.min(OutboxRow.id)).where(OutboxRow.state == "pending",
                                                      OutboxRow.lane == bindparam("lane"))
                 .scalar_subquery())
        self.head_of = select(OutboxRow).where(OutboxRow.id == first, due, free)
        self.next_retry_at = select(func.min(OutboxRow.not_before)).join(heads, heads.c.id == OutboxRow.id)


@functools.cache
def _queries() -> _OutboxQueries:
    return _OutboxQueries()  # at the first notice, not at import: the import is part of every start


class OutboxRepo:
    """The durable queue of Matrix actions, ordered within a lane (one room), not globally.

    The effects of one cause (a command, a hospital message) also keep their order across lanes —
    `!new` answers in the desk once the file's room is made and its referent invited — and an
    entry waits for nothing else, so a room that fails delays only its own lane and the rest of
    its own cause (until that entry is done or set aside)."""

    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def add(self, key: str, action: str, case_ref: str | None, payload: dict[str, Any],
                  now: datetime, *, lanes: Mapping[str, str | None] | None = None) -> bool:
        """Enqueue once per key: a replayed command or resent message adds nothing. `lanes`: the
        lane of rooms the caller has already looked up (`RoomOwners.lane`), saving the lookup."""
        cause = fit_key(cause_of(key))  # of the whole key: a digested one loses its index
        key = fit_key(key)
        room_id = str(payload.get("room_id") or "")
        known = lanes or {}
        room_lane = (known[room_id] if room_id in known else await self._room_lane(room_id)) if room_id else None
        added = await insert_once(self.s, OutboxRow, {
            "key": key, "action": action, "case_ref": case_ref, "payload": payload, "created_at": now,
            "state": "pending", "attempts": 0, "lane": lane_of(action, case_ref, payload, room_lane), "cause": cause,
        }, conflict=("key",))
        return added is not None

    async def _room_lane(self, room_id: str) -> str | None:
        return (await RoomRepo(self.s).owners(room_id)).lane

    async def pending(self, now: datetime, limit: int = 100) -> list[OutboxEntry]:
        """Every pending entry due at `now`, oldest first (all lanes mixed)."""
        result = await self.s.execute(
            select(OutboxRow)
            .where(OutboxRow.state == "pending")
            .where((OutboxRow.not_before.is_(None)) | (OutboxRow.not_before <= now))
            .order_by(OutboxRow.id).limit(limit)
        )
        return [OutboxEntry(r) for r in result.scalars()]

    async def due_heads(self, now: datetime, busy: Collection[str] = (), limit: int = 100) -> list[OutboxEntry]:
        """The first pending entry of each lane, when it is due, free (see the class) and its lane
        not `busy`; oldest first."""
        result = await self.s.execute(_queries().due_heads, {"now": now, "busy": list(busy), "limit": limit})
        return [OutboxEntry(r) for r in result.scalars()]

    async def head_of(self, lane: str, now: datetime) -> OutboxEntry | None:
        """The first pending entry of `lane` if it is due and free; None when the lane is empty or waits."""
        result = await self.s.execute(_queries().head_of, {"lane": lane, "now": now})
        row = result.scalar_one_or_none()
        return None if row is None else OutboxEntry(row)

    async def next_retry_at(self) -> datetime | None:
        """When the earliest lane waiting on a retry is due again."""
        result = await self.s.execute(_queries().next_retry_at)
        return _aware(result.scalar_one_or_none())

    async def oldest_pending_since(self) -> datetime | None:
        """When the oldest entry still waiting to be done was enqueued (None when none waits)."""
        result = await self.s.execute(select(func.min(OutboxRow.created_at)).where(OutboxRow.state == "pending"))
        return _aware(result.scalar_one_or_none())

    async def mark_attempt(self, entry_id: int) -> None:
        await self.s.execute(
            update(OutboxRow).where(OutboxRow.id == entry_id).values(attempts=OutboxRow.attempts + 1)
        )

    async def done(self, entry_id: int, event_id: str | None) -> None:
        """Mark an entry sent and drop what it no longer needs: the message's parameters and a
        file's text may hold a name or clinical content, which now lives only in the room,
        encrypted. The key, kind, case and event id stay for deduplication and later edits."""
        row = await self.s.get(OutboxRow, entry_id)
        spent = None if row is None else {k: _SPENT.get(k, v) for k, v in row.payload.items()}
        values: dict[str, Any] = {"state": "done", "event_id": event_id}
        if spent is not None:
            values["payload"] = spent
        await self.s.execute(update(OutboxRow).where(OutboxRow.id == entry_id).values(**values))

    async def failed(self, entry_id: int, error: str) -> None:
        """Dead-letter an entry: it is never tried again. Its content is dropped like a sent one's;
        `error` names what went wrong (an errcode, a class), never content."""
        row = await self.s.get(OutboxRow, entry_id)
        values: dict[str, Any] = {"state": "failed", "error": error[:500]}
        if row is not None:
            values["payload"] = {k: _SPENT.get(k, v) for k, v in row.payload.items()}
        await self.s.execute(update(OutboxRow).where(OutboxRow.id == entry_id).values(**values))

    async def retry_later(self, entry_id: int, when: datetime, error: str, count: bool = True) -> None:
        """A transient failure: hold the entry (and its lane) until `when`; `count` the attempt
        unless it was counted before it was made (mark_attempt)."""
        values: dict[str, Any] = {"not_before": when, "error": error[:500]}
        if count:
            values["attempts"] = OutboxRow.attempts + 1
        await self.s.execute(update(OutboxRow).where(OutboxRow.id == entry_id).values(**values))

    async def retry_all_now(self) -> int:
        """Every entry waiting on a retry is due now; returns how many."""
        result = await self.s.execute(update(OutboxRow).where(OutboxRow.state == "pending",
                                                              OutboxRow.not_before.is_not(None))
                                      .values(not_before=None))
        return int(getattr(result, "rowcount", 0) or 0)

    async def rest_of_lane(self, lane: str, after: int, created_before: datetime | None = None) -> list[OutboxEntry]:
        """The pending entries of `lane` queued after entry `after`, in order (only those queued
        before `created_before`, when given): what waits behind a head that failed for good."""
        query = select(OutboxRow).where(OutboxRow.state == "pending", OutboxRow.lane == lane, OutboxRow.id > after)
        if created_before is not None:
            query = query.where(OutboxRow.created_at < created_before)
        result = await self.s.execute(query.order_by(OutboxRow.id))
        return [OutboxEntry(r) for r in result.scalars()]

    async def state_of(self, key: str) -> str | None:
        """pending, done or failed; None when no entry has this key."""
        result = await self.s.execute(select(OutboxRow.state).where(OutboxRow.key == fit_key(key)))
        return result.scalar_one_or_none()

    async def event_id_of(self, key: str) -> str | None:
        result = await self.s.execute(select(OutboxRow.event_id).where(OutboxRow.key == fit_key(key)))
        return result.scalar_one_or_none()

    async def count(self, state: str) -> int:
        result = await self.s.execute(select(func.count()).select_from(OutboxRow).where(OutboxRow.state == state))
        return int(result.scalar_one())

    async def get(self, entry_id: int) -> OutboxEntry | None:
        """The entry as stored now, if it is still pending."""
        row = await self.s.get(OutboxRow, entry_id, populate_existing=True)
        return OutboxEntry(row) if row is not None and row.state == "pending" else None

    async def renewing_desk(self, user_id: str) -> bool:
        """True while a new desk for `user_id`, in place of a lost one, is still to be made."""
        found = await self.s.execute(select(OutboxRow.id).where(OutboxRow.state == "pending",
                                                                OutboxRow.lane == "desk-new:" + user_id).limit(1))
        return found.first() is not None

    async def set_aside_in_room(self, room_id: str, kind: str, why: str) -> int:
        """Pending notices of `kind` naming `room_id` are set aside without a report: what they
        said is told elsewhere (a referral's decision, in the referrer's next room). Returns how many."""
        rows = await self.s.execute(select(OutboxRow).where(OutboxRow.state == "pending", OutboxRow.action == "notify"))
        moved = 0
        for row in rows.scalars():
            if row.payload.get("room_id") == room_id and row.payload.get("kind") == kind:
                await self.failed(row.id, why)
                moved += 1
        return moved

    async def follow_desk(self, room_id: str, user_id: str) -> int:
        """Pending entries naming `room_id`, a desk of `user_id` given up, now name the desk
        itself (`desk=`), wherever it is next: a reply to a command typed there is not lost.
        Their lane (`desk:<user>`) and order stay. Returns how many."""
        rows = await self.s.execute(select(OutboxRow).where(OutboxRow.state == "pending",
                                                            OutboxRow.lane == "desk:" + user_id))
        moved = 0
        for row in rows.scalars():
            payload = dict(row.payload)
            if payload.get("room_id") != room_id or row.action != "notify":
                continue
            payload["room_id"], payload["desk"] = None, user_id
            await self.s.execute(update(OutboxRow).where(OutboxRow.id == row.id).values(payload=payload))
            moved += 1
        return moved


#: Payload fields emptied once an entry is sent (see OutboxRepo.done).
_SPENT: dict[str, Any] = {"params": {}, "data": ""}


class AuditRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def record(self, at: datetime, actor: str, action: str, case_ref: str | None,
                     detail: dict[str, Any]) -> None:
        # A Core INSERT: no ORM object to build and flush (every command writes one).
        await self.s.execute(insert(cast(Table, AuditRow.__table__)).values(at=at, actor=actor, action=action,
                                                               case_ref=case_ref, detail=detail))

    async def entries(self, case_ref: str | None = None) -> list[tuple[datetime, str, str, dict[str, Any]]]:
        query = select(AuditRow).order_by(AuditRow.id)
        if case_ref is not None:
            query = query.where(AuditRow.case_ref == case_ref)
        result = await self.s.execute(query)
        return [(_aware(r.at) or r.at, r.actor, r.action, dict(r.detail)) for r in result.scalars()]


class EventRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def claim(self, event_id: str, now: datetime) -> bool:
        """True the first time an event is seen; the claim commits with what it caused."""
        claimed = await insert_once(self.s, ProcessedEventRow, {"event_id": event_id, "at": now},
                                    conflict=("event_id",))
        return claimed is not None

    async def claim_all(self, event_ids: Sequence[str], now: datetime) -> None:
        """Claim markers whose first-time answer nobody needs, in one statement (those already
        claimed stay as they were)."""
        if event_ids:
            await self.s.execute(_dialect_insert(self.s, ProcessedEventRow)
                                 .values([{"event_id": e, "at": now} for e in event_ids])
                                 .on_conflict_do_nothing(index_elements=["event_id"]))

    async def seen(self, event_id: str) -> bool:
        """True when `event_id` was claimed (and committed) before."""
        found = await self.s.execute(select(ProcessedEventRow.event_id).where(ProcessedEventRow.event_id == event_id))
        return found.first() is not None


class KeyValueRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def get(self, key: str) -> str | None:
        found = await self.s.execute(select(KeyValueRow.value).where(KeyValueRow.key == key))
        return found.scalar_one_or_none()

    async def set(self, key: str, value: str) -> None:
        await insert_or_update(self.s, KeyValueRow, {"key": key, "value": value}, conflict=("key",))

    async def increment(self, key: str) -> int:
        """Add one to a counter, in one statement: a read then a write lost counts on PostgreSQL,
        where two units counting at once both read the same value (READ COMMITTED)."""
        statement = (_dialect_insert(self.s, KeyValueRow).values(key=key, value="1")
                     .on_conflict_do_update(index_elements=["key"], set_={
                         "value": sa_cast(sa_cast(KeyValueRow.value, Integer) + 1, Text)})
                     .returning(KeyValueRow.value))
        return int((await self.s.execute(statement)).scalar_one())


class IntakeDeadLetterRepo:
    """Incoming events set aside after failing again and again (no content: ids and an error class)."""

    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def add(self, event_id: str, room_id: str, error: str, attempts: int, now: datetime) -> bool:
        added = await insert_once(self.s, IntakeDeadLetterRow, {
            "event_id": event_id, "room_id": room_id, "error": error[:120], "attempts": attempts, "at": now,
        }, conflict=("event_id",))
        return added is not None

    async def has(self, event_id: str) -> bool:
        return await self.s.get(IntakeDeadLetterRow, event_id) is not None

    async def count(self) -> int:
        result = await self.s.execute(select(func.count()).select_from(IntakeDeadLetterRow))
        return int(result.scalar_one())

    async def entries(self) -> list[tuple[str, str, str, int]]:
        """(event id, room id, error class, attempts), oldest first."""
        result = await self.s.execute(select(IntakeDeadLetterRow).order_by(IntakeDeadLetterRow.at))
        return [(r.event_id, r.room_id, r.error, r.attempts) for r in result.scalars()]
