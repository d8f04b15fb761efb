"""Error classification and backoff of the outbox (pure)."""

from __future__ import annotations

import itertools

import pytest
from aiohttp import ClientConnectionError, ServerDisconnectedError

from hub.bots.client import is_transient, transient_answer
from hub.bots.outbox import RetryPolicy, error_label
from hub.errors import MatrixError, RoomGone, RoomNotSynced, TransientError


@pytest.mark.parametrize(("status", "errcode", "transient"), [
    (429, "M_LIMIT_EXCEEDED", True),
    (None, "M_LIMIT_EXCEEDED", True),
    (500, "M_UNKNOWN", True),
    (502, None, True),
    (503, "M_UNKNOWN", True),
    (400, "M_UNKNOWN", False),  # Synapse's permanent refusals are often M_UNKNOWN
    (403, "M_FORBIDDEN", False),
    (404, "M_NOT_FOUND", False),
    (413, "M_TOO_LARGE", False),
    (None, None, True),  # no answer nio could read
    (None, "M_FORBIDDEN", False),
])
def test_answers_are_classified_by_status_then_errcode(status: int | None, errcode: str | None,
                                                       transient: bool) -> None:
    assert transient_answer(status, errcode) is transient


def test_exceptions_are_classified() -> None:
    assert is_transient(TransientError("send", "M_UNKNOWN", None, 502))
    assert is_transient(ClientConnectionError())
    assert is_transient(ServerDisconnectedError())
    assert is_transient(TimeoutError())
    assert not is_transient(MatrixError("send", "M_FORBIDDEN", None, 403))
    assert not is_transient(RoomGone("the bot is not in room !x"))
    assert not is_transient(KeyError("kind"))
    assert is_transient(RoomNotSynced("room !new:x not synced yet"))  # retried every SYNC_WAIT_S


def test_error_labels_name_a_class_and_a_code_only() -> None:
    assert error_label(MatrixError("send to !room:x", "M_FORBIDDEN", None, 403)) == "MatrixError 403 M_FORBIDDEN"
    assert error_label(ConnectionResetError("peer said something")) == "ConnectionResetError"


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=300.0)
    lows = [policy.delay(n, rand=lambda: 0.0) for n in range(1, 15)]
    highs = [policy.delay(n, rand=lambda: 1.0) for n in range(1, 15)]
    assert lows[:4] == [0.25, 0.5, 1.0, 2.0] and highs[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(highs) == 300.0 and max(lows) == 150.0
    assert all(a <= b for a, b in itertools.pairwise(lows))


def test_backoff_waits_at_least_what_the_homeserver_asked() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=60.0)
    assert policy.delay(1, retry_after_s=7.5, rand=lambda: 0.0) == 7.5
    assert policy.delay(1, retry_after_s=3600.0, rand=lambda: 0.0) == 60.0
