"""Cutting one MLLP block into the messages it carries (hub/inbound/hl7batch.py), pure."""

from __future__ import annotations

from hub.inbound.hl7batch import split_block

A = b"MSH|^~\\&|SIH|CHU-X|RELAIS|DAC|20261127214228||ADT^A01|1|P|2.5\rPID|1||1^^^CHU-X^PI\r"
B = b"MSH|^~\\&|SIH|CHU-X|RELAIS|DAC|20261127214229||ADT^A03|2|P|2.5\nPID|1||1^^^CHU-X^PI\n"


def test_one_message_and_leading_noise_without_text() -> None:
    for lead in (b"", b"\xef\xbb\xbf", b"\r\n", b"\x00 "):
        block = split_block(lead + A)
        assert block.messages == (A,) and block.stray == () and not block.is_batch, lead


def test_several_messages_in_one_block_keep_their_order_and_line_ends() -> None:
    block = split_block(A + B + A)
    assert block.messages == (A, B, A) and block.order == (("m", 0), ("m", 1), ("m", 2))


def test_batches_with_and_without_fhs() -> None:
    fhs, bhs = b"FHS|^~\\&|SIH|CHU-X||||||||F1", b"BHS|^~\\&|SIH|CHU-X||||||||B1"
    block = split_block(fhs + b"\r" + bhs + b"\r" + A + B + b"BTS|2\rFTS|1\r")
    assert (block.fhs, block.bhs, block.messages, block.stray) == (fhs, bhs, (A, B), ())
    block = split_block(bhs + b"\n" + A + b"BTS|1\n")
    assert (block.fhs, block.bhs, block.messages) == (b"", bhs, (A,)) and block.is_batch


def test_segments_outside_any_message_are_stray_in_their_place() -> None:
    block = split_block(b"PID|1||9^^^X^PI\r" + A + b"BHS|^~\\&\rPV1|1|I\r" + B)
    assert block.stray == (b"PID|1||9^^^X^PI\r", b"PV1|1|I\r")
    assert block.order == (("s", 0), ("m", 0), ("s", 1), ("m", 1))
    # A segment merely starting with the letters MSH is no message header.
    assert split_block(b"MSHX|1\r").messages == ()
