"""Plan notices and replies render readably in both languages, and every key they use exists."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from hub.domain import plan
from hub.domain.effects import Notify
from hub.domain.evaluations import Reason, Tool
from hub.domain.plan import ItemStatus
from hub.i18n.catalog import Catalog
from hub.services.plans import present
from hub.services.reevaluations import ReviewRecord, review_prompts

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HUB = Path(__file__).resolve().parents[2] / "hub"
SOURCES = ["domain/plan.py", "domain/evaluations.py", "services/plans.py", "services/reevaluations.py",
           "commands/handlers_plan.py"]
KEY = re.compile(r"\"((?:error\.(?:plan|eval)_\w+)|(?:plan|eval|reevaluation)\.[\w.]+|help\.(?:plan|eval)\w*)\"")


def _keys() -> set[str]:
    found: set[str] = set()
    for name in SOURCES:
        found |= set(KEY.findall((HUB / name).read_text(encoding="utf-8")))
    found.discard("plan.update")  # a notice kind, not a message
    found.discard("plan.review")
    found |= {f"plan.change.{field}" for field in ("status", "provider", "frequency", "review", "closed")}
    found |= {f"reevaluation.{kind}" for kind in ("upcoming", "due", "overdue")}
    found |= {f"status.{s.value}" for s in ItemStatus} | {f"tool.{t.value}" for t in Tool}
    found |= {f"reason.{r.value}" for r in Reason}
    return found


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_plan_key_is_in_the_catalog(language: str) -> None:
    catalog = Catalog(language)
    keys = _keys()
    assert len(keys) > 60
    assert sorted(k for k in keys if not catalog.has(k)) == []


@pytest.mark.parametrize("language", ["fr", "en"])
def test_plan_notices_render_as_text_and_html_without_raw_data(language: str) -> None:
    catalog = Catalog(language)
    item, added = plan.add_item([], "R-1", "Toilette <matin>", "Aide", provider_user="@n:x", by="@cm:x", now=NOW,
                                review=date(2026, 4, 1))
    changed_item, changed = plan.set_item(item, "R-1", {"status": "unavailable"}, by="@cm:x", now=NOW)
    _items, lost = plan.reassign([changed_item], "R-1", "@n:x", None, by="@cm:x", now=NOW)
    notices = [present(e) for e in (*added, *changed, *lost)]
    [review] = review_prompts([ReviewRecord("R-1", "@cm:x", item)], date(2026, 4, 2), set())
    for notice in (*notices, review):
        assert isinstance(notice, Notify)
        text = catalog.text(notice.message, **notice.params)
        html = catalog.html(notice.message, **notice.params)
        for raw in ("{", "'need'", "None", "in_place", "unavailable\n"):
            assert raw not in text, (notice.message, text)
        assert "Toilette <matin>" in text and "Toilette &lt;matin&gt;" in html
    status_word = catalog.word("status", "unavailable")
    assert status_word in catalog.text(notices[1].message, **notices[1].params)  # type: ignore[union-attr]
    assert review.mentions == ("@n:x", "@cm:x")
