"""Variants of issue 15's kinds that interface engines send and the first tests did not cover,
over real MLLP on TCP (the messages are files under tests/inbound/messages/, invented patients).

Each test names the kind it widens: several messages in one block, batches, resends, order.
"""

from __future__ import annotations

import logging

import pytest

from hub.domain.alerts import AlertEvent
from hub.domain.settings import Setting
from hub.inbound.mllp import frame
from tests.inbound.alert_stack import Stack
from tests.inbound.mllp_client import MllpClient, err_code
from tests.inbound.test_hospital_feeds import PATIENT_DATA, answers, client, message, problems, segments

pytestmark = [pytest.mark.db]
__all__ = ["client"]  # the fixture, shared with test_hospital_feeds


async def test_a_message_glued_to_junk_or_a_bom_in_one_block_is_not_swallowed(
        stack: Stack, client: MllpClient) -> None:
    # Kind 1: an engine concatenating files keeps each file's BOM; junk on the same line as the
    # next MSH made the A03 part of the A01: answered AA for the A01 only, the discharge lost.
    ref = await stack.person("CHU-X:910033")
    block = await client.send(message("a01-junk-a03-one-block.hl7"))
    assert answers(block) == [("AA", "G-1"), ("AA", "G-2")]
    assert await stack.messages() == 2
    kinds = [n["message"] for n in await stack.notices(ref)]
    assert kinds == ["alert.admission", "alert.discharge"]
    assert (await stack.setting(ref))[0] is Setting.HOME


async def test_a_cancellation_without_movement_id_arriving_first_keeps_its_event_from_standing(
        stack: Stack, client: MllpClient) -> None:
    # Kind 10 without IHE PAM's ZBE-1: the A11 (10:15) overtakes the A01 it cancels (10:00).
    ref = await stack.person("CHU-X:910034")
    assert answers(await client.send(message("a11-no-zbe-first.hl7"))) == [("AA", "N-2")]
    assert answers(await client.send(message("a01-late-after-its-cancel-no-zbe.hl7"))) == [("AA", "N-1")]
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.cancelled_unknown"]
    assert (await stack.setting(ref))[0] is Setting.HOME
    async with stack.db.unit() as uow:
        records = await uow.alerts.alerts_of(ref)
    assert records[1].event is AlertEvent.admission and records[1].cancelled_by == records[0].id
    # The next day's admission happened after the cancellation: a new stay, it stands.
    assert answers(await client.send(message("a01-new-stay-after-cancel-no-zbe.hl7"))) == [("AA", "N-3")]
    notices = await stack.notices(ref)
    assert [n["message"] for n in notices][1:] == ["alert.admission"]
    assert notices[1]["params"]["place"] == "CHU-X — CARDIO"
    assert (await stack.setting(ref))[0] is Setting.HOSPITAL


async def test_a_resend_re_encoded_with_other_empty_trailing_parts_posts_nothing_twice(
        stack: Stack, client: MllpClient) -> None:
    # Kind 10: the engine regenerates MSH-7 and writes trailing empty fields, components and
    # repetitions its own way when it resends under the same control id.
    ref = await stack.person("CHU-X:910031")
    assert answers(await client.send(message("a01-geria.hl7"))) == [("AA", "L-1")]
    assert answers(await client.send(message("a01-geria-resent-reencoded.hl7", ends=b"\r\n"))) == [("AA", "L-1")]
    assert await stack.messages() == 1
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]


async def test_another_content_under_a_used_control_id_is_kept_processed_and_reported(
        stack: Stack, client: MllpClient, caplog: pytest.LogCaptureFixture) -> None:
    # Kind 10, the rule chosen: a control id is a resend key only with the same content. Other
    # content under it is news (dropping it would lose information): kept, processed,
    # acknowledged AA, and one log line tells the operator that the sender reuses control ids.
    caplog.set_level(logging.INFO, logger="hub.inbound.mllp_server")
    ref = await stack.person("CHU-X:910031")
    assert answers(await client.send(message("a01-geria.hl7"))) == [("AA", "L-1")]
    # The same control id from another facility of the sender (MSH-4) is not even a reuse.
    other_sender = message("a01-geria.hl7").replace(b"|SIH|CHU-X|", b"|SIH|CHU-Z|")
    assert answers(await client.send(other_sender)) == [("AA", "L-1")]
    assert problems(stack, "control_id_reused") == 0
    assert answers(await client.send(message("a01-same-control-id-other-content.hl7"))) == [("AA", "L-1")]
    assert await stack.messages() == 3
    assert [n["params"]["place"] for n in await stack.notices(ref) if n["message"] == "alert.admission"][-1] \
        == "CHU-X — CARDIO"
    assert problems(stack, "control_id_reused") == 1
    lines = [r.getMessage() for r in caplog.records if "control_id_reused" in r.getMessage()]
    assert len(lines) == 1 and "SIH/CHU-X" in lines[0] and "L-1" in lines[0]
    assert not any(word in lines[0] for word in PATIENT_DATA)


async def test_a_message_without_msh_9_is_an_error_not_an_unsupported_type(stack: Stack, client: MllpClient) -> None:
    ack = await client.send(message("no-message-type.hl7"))
    assert answers(ack) == [("AE", "M-9")] and err_code(ack) == "101"
    msh = segments(ack, "MSH")[0]
    assert msh[2:6] == ["RELAIS", "DAC", "SIH", "CHU-X"] and msh[8] == "ACK" and msh[11] == "2.5"
    assert await stack.messages() == 0 and problems(stack, "no_message_type") == 1


async def test_a_batch_whose_bts_count_is_wrong_is_answered_as_received_and_reported(
        stack: Stack, client: MllpClient, caplog: pytest.LogCaptureFixture) -> None:
    # Kind 2: BTS-1 says 3, one message came. The one received is kept and acknowledged; our
    # BTS-1 says 1, and the operator gets one line (messages were lost before reaching us).
    caplog.set_level(logging.INFO, logger="hub.inbound.mllp_server")
    ref = await stack.person("CHU-X:910035")
    block = await client.send(message("batch-count-mismatch.hl7"))
    assert answers(block) == [("AA", "B88-1")]
    assert segments(block, "BTS") == [["BTS", "1"]] and segments(block, "BHS")[0][11] == "B-88"
    assert await stack.messages() == 1
    assert [n["message"] for n in await stack.notices(ref)][:1] == ["alert.admission"]
    assert problems(stack, "batch_count_mismatch") == 1
    lines = [r.getMessage() for r in caplog.records if "batch_count_mismatch" in r.getMessage()]
    assert len(lines) == 1 and "declared 3" in lines[0] and "SIH/CHU-X" in lines[0]


async def test_a_message_before_a_batch_in_one_block_is_answered_in_a_batch_naming_both_ends(
        stack: Stack, client: MllpClient) -> None:
    # Kind 2: a plain message, then a BHS batch, in one block. The whole answer is a batch; the
    # first message's batch header is made from its MSH, sender and receiver swapped.
    await stack.person("CHU-X:910035")
    block = await client.send(message("message-then-batch-one-block.hl7"))
    assert answers(block) == [("AA", "B89-0"), ("AA", "B89-1")]
    assert [bhs[2:6] for bhs in segments(block, "BHS")] == [["RELAIS", "DAC", "SIH", "CHU-X"]] * 2
    assert segments(block, "BHS")[1][11] == "B-89" and segments(block, "BTS") == [["BTS", "1"]] * 2
    assert await stack.messages() == 2


async def test_a_batch_of_acks_gets_no_answer_and_the_next_message_is_answered_in_order(
        stack: Stack, client: MllpClient) -> None:
    # Kind 8: an ACK is never acknowledged, not even wrapped in a batch. The connection stays
    # in step: the next block's answer is the next thing read.
    await client.write(frame(message("batch-of-acks.hl7")) + frame(message("a01-geria.hl7")))
    assert answers(await client.ack()) == [("AA", "L-1")]
    # An empty batch is still a batch sent to us: it gets its (empty) batch answer.
    empty = b"BHS|^~\\&|SIH|CHU-X|RELAIS|DAC|20261201080000||||B-91\rBTS|0\r"
    block = await client.send(empty)
    assert answers(block) == [] and segments(block, "BHS")[0][11] == "B-91" and segments(block, "BTS") == [["BTS", "0"]]
