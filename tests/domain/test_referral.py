"""Referral rules (SPEC §9): reference, criteria, acceptance, default case manager, follow-up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.domain import referral
from hub.domain.caseload import Caseload, Limits
from hub.domain.errors import DomainError
from hub.domain.persons import INS, Identifier
from hub.domain.referral import CountRow, Criteria, Source, Status

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
LIMITS = Limits(target=40, maximum=60, intake_per_month=5)
NIR = Identifier(INS, "269054958815780")


def _new(**kw: object) -> referral.Referral:
    args: dict[str, object] = dict(ref="O-2026-0001", source=Source.MATRIX, now=NOW, referrer="@doc:x",
                                   name="Paulette Exemple", born=date(1938, 7, 14), reason="chutes")
    args.update(kw)
    return referral.new_referral(**args)  # type: ignore[arg-type]


def test_reference_is_O_year_sequence_and_is_checked() -> None:
    assert referral.referral_ref(2026, 1) == "O-2026-0001"
    assert referral.referral_ref(2026, 12345) == "O-2026-12345"
    assert referral.check_ref(" o-2026-0007 ") == "O-2026-0007"
    for bad in ("R-2026-0001", "O-26-1", "O-2026-01", ""):
        with pytest.raises(DomainError) as err:
            referral.check_ref(bad)
        assert err.value.key == "error.referral_ref"


@pytest.mark.parametrize(("pairs", "expected"), [
    (["autonomie=oui", "aides=oui", "coordination=non"], Criteria(True, True, False)),
    (["autonomy=yes", "care=yes", "coordination=yes"], Criteria(True, True, True)),
    (["Coordination=NON"], Criteria(None, None, False)),
    (["aides=Oui", "autonomie=o"], Criteria(True, True, None)),
    (["autonomy=y", "soins=n", "coordination=1"], Criteria(True, False, True)),
])
def test_criteria_words_french_and_english(pairs: list[str], expected: Criteria) -> None:
    assert referral.parse_criteria(pairs) == expected


@pytest.mark.parametrize(("pairs", "key"), [
    (["autonomie"], "error.referral_criterion"),
    (["santé=oui"], "error.referral_criterion"),
    (["autonomie=peut-être"], "error.referral_yes_no"),
    (["autonomie=oui", "autonomy=non"], "error.referral_criterion_twice"),
    ([], "error.referral_criterion"),
])
def test_bad_criteria_are_refused_with_a_specific_error(pairs: list[str], key: str) -> None:
    with pytest.raises(DomainError) as err:
        referral.parse_criteria(pairs)
    assert err.value.key == key


def test_accept_only_when_all_three_criteria_are_met_and_criteria_merge() -> None:
    r = _new()
    with pytest.raises(DomainError) as err:
        referral.accept(r, case_ref="R-2026-0001", by="@coord:x", now=NOW)
    assert err.value.key == "error.referral_criteria"
    r = referral.record_criteria(r, Criteria(True, True, False))
    with pytest.raises(DomainError) as err:
        referral.check_acceptable(r)
    assert [m["key"] for m in err.value.params["missing"]] == ["referral.criterion.coordination"]  # type: ignore[attr-defined]
    r = referral.record_criteria(r, Criteria(None, None, True))  # only coordination revised
    assert r.criteria == Criteria(True, True, True)
    done = referral.accept(r, case_ref="R-2026-0001", by="@coord:x", now=NOW + timedelta(days=2))
    assert (done.status, done.case_ref, done.decided_by) == (Status.ACCEPTED, "R-2026-0001", "@coord:x")
    for again in (lambda: referral.accept(done, case_ref="R-2026-0002", by="@c:x", now=NOW),
                  lambda: referral.refuse(done, why="x", refer_to=None, by="@c:x", now=NOW),
                  lambda: referral.record_criteria(done, Criteria(False))):
        with pytest.raises(DomainError) as err:
            again()
        assert err.value.key == "error.referral_decided"


def test_a_person_already_followed_is_flagged_and_never_opened_twice() -> None:
    r = _new(identifiers=(NIR,), followed={NIR: "R-2025-0042"})
    assert r.duplicate_of == "R-2025-0042"
    r = referral.record_criteria(r, Criteria(True, True, True))
    with pytest.raises(DomainError) as err:
        referral.check_acceptable(r)
    assert err.value.key == "error.referral_duplicate" and err.value.params["case"] == "R-2025-0042"
    assert _new(identifiers=(NIR,), followed={}).duplicate_of is None


def test_refusal_needs_a_reason_and_keeps_where_to_turn() -> None:
    with pytest.raises(DomainError) as err:
        referral.refuse(_new(), why="  ", refer_to=None, by="@c:x", now=NOW)
    assert err.value.key == "error.referral_reason_missing"
    done = referral.refuse(_new(), why="pas  complexe", refer_to=" SSIAD  du secteur ", by="@c:x", now=NOW)
    assert (done.status, done.refusal, done.refer_to) == (Status.REFUSED, "pas complexe", "SSIAD du secteur")


def test_default_case_manager_has_most_room_and_intake_left() -> None:
    loads = {
        "@a:x": Caseload(active=30, intake_this_month=5),  # most room but monthly intake reached
        "@b:x": Caseload(active=35, intake_this_month=1),
        "@c:x": Caseload(active=20, intake_this_month=4),
        "@d:x": Caseload(active=20, intake_this_month=0),  # same room as @c: configuration order wins
    }
    assert referral.choose_case_manager(loads, LIMITS) == ("@c:x", [])
    full = {"@a:x": Caseload(active=60, intake_this_month=0), "@b:x": Caseload(active=10, intake_this_month=5)}
    with pytest.raises(DomainError) as err:
        referral.choose_case_manager(full, LIMITS)
    assert err.value.key == "error.referral_no_case_manager"
    # Past the target, under the maximum: chosen with the warning !new gives.
    over = {"@a:x": Caseload(active=45, intake_this_month=0)}
    assert referral.choose_case_manager(over, LIMITS) == ("@a:x", ["warn.caseload_target"])


def test_a_requested_case_manager_is_refused_past_the_maximum_or_when_not_configured() -> None:
    loads = {"@a:x": Caseload(active=60, intake_this_month=0), "@b:x": Caseload(active=3, intake_this_month=7)}
    with pytest.raises(DomainError) as err:
        referral.choose_case_manager(loads, LIMITS, "@a:x")
    assert err.value.key == "error.caseload_max"
    assert referral.choose_case_manager(loads, LIMITS, "@b:x") == ("@b:x", ["warn.intake_month"])
    with pytest.raises(DomainError) as err:
        referral.choose_case_manager(loads, LIMITS, "@pilot:x")
    assert err.value.key == "error.referral_not_case_manager"


def test_reminder_after_n_days_once_a_day() -> None:
    r = _new()
    assert not referral.reminder_due(r, NOW + timedelta(days=6, hours=23), date(2026, 3, 8))
    later = NOW + timedelta(days=7)
    assert referral.reminder_due(r, later, later.date())
    reminded = replace(r, reminded_on=later.date())
    assert not referral.reminder_due(reminded, later, later.date())
    assert referral.reminder_due(reminded, later + timedelta(days=1), later.date() + timedelta(days=1))
    assert referral.reminder_due(r, NOW + timedelta(days=3), date(2026, 3, 5), days=3)
    decided = referral.refuse(r, why="x", refer_to=None, by="@c:x", now=NOW)
    assert not referral.reminder_due(decided, later, later.date())


def test_refused_referral_is_erased_after_n_days_and_keeps_what_counts_need() -> None:
    refused = referral.refuse(_new(identifiers=(NIR,), gp="@gp:x"), why="x", refer_to="CLIC", by="@c:x", now=NOW)
    assert not referral.erase_due(refused, NOW + timedelta(days=89))
    assert referral.erase_due(refused, NOW + timedelta(days=90))
    assert not referral.erase_due(_new(), NOW + timedelta(days=900))  # pending: never erased
    erased = referral.erase(refused, NOW + timedelta(days=90))
    assert (erased.name, erased.born, erased.reason, erased.identifiers, erased.gp, erased.refusal,
            erased.refer_to, erased.referrer) == ("", None, "", (), None, None, None, "")
    assert (erased.ref, erased.source, erased.status, erased.received_at, erased.decided_at) == (
        refused.ref, refused.source, refused.status, refused.received_at, refused.decided_at)
    assert not referral.erase_due(erased, NOW + timedelta(days=400))


def test_figures_by_source_with_median_time_to_decision() -> None:
    def row(source: str, status: str, day: int, hours: float | None) -> CountRow:
        received = NOW + timedelta(days=day)
        decided = received + timedelta(hours=hours) if hours is not None else None
        return CountRow(source, status, decided, received)
    rows = [row("matrix", "accepted", 0, 48), row("matrix", "refused", 1, 96), row("matrix", "pending", 2, None),
            row("fhir", "accepted", 0, 5), row("fhir", "accepted", 40, 1)]  # the last is outside the period
    out = referral.figures(rows, date(2026, 3, 1), date(2026, 3, 31), PARIS)
    matrix = (out["matrix.received"], out["matrix.accepted"], out["matrix.refused"], out["matrix.pending"])
    assert matrix == (3, 1, 1, 1)
    assert out["matrix.median_days_to_decision"] == 3 and out["matrix.median_hours_to_decision"] == 72
    assert (out["fhir.received"], out["fhir.accepted"], out["fhir.median_hours_to_decision"]) == (1, 1, 5)
    assert out["fhir.median_days_to_decision"] == 0
    assert (out["total.received"], out["total.accepted"], out["total.median_hours_to_decision"]) == (4, 2, 48)


def test_figures_count_a_referral_on_the_territorys_date_not_the_utc_one() -> None:
    # 23:30 UTC on 28 February is 00:30 on 1 March in Paris (UTC+1); 22:30 UTC on 31 March is
    # 00:30 on 1 April (summer time, UTC+2): the first is in March's figures, the second is not.
    rows = [CountRow("matrix", "pending", None, datetime(2026, 2, 28, 23, 30, tzinfo=UTC)),
            CountRow("fhir", "pending", None, datetime(2026, 3, 31, 22, 30, tzinfo=UTC))]
    out = referral.figures(rows, date(2026, 3, 1), date(2026, 3, 31), PARIS)
    assert (out["matrix.received"], out["fhir.received"]) == (1, 0)
    reunion = referral.figures(rows, date(2026, 3, 1), date(2026, 3, 31), ZoneInfo("Indian/Reunion"))
    assert (reunion["matrix.received"], reunion["fhir.received"]) == (1, 0)
    utc = referral.figures(rows, date(2026, 3, 1), date(2026, 3, 31), UTC)
    assert (utc["matrix.received"], utc["fhir.received"]) == (0, 1)


def test_the_reminder_counts_local_calendar_days_across_summer_time() -> None:
    """Received Friday 27/03 at 14:00 in Paris: seven days later is Friday 03/04 at 14:00 local,
    an hour less than 168 hours since summer time started on the Sunday."""
    r = replace(_new(), received_at=datetime(2026, 3, 27, 13, 0, tzinfo=UTC))
    due = datetime(2026, 4, 3, 12, 0, tzinfo=UTC)
    assert not referral.reminder_due(r, due - timedelta(seconds=1), date(2026, 4, 3))
    assert referral.reminder_due(r, due, date(2026, 4, 3))
