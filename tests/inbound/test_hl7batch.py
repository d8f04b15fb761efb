"""Cutting one MLLP block into the messages it carries (hub/inbound/hl7batch.py), pure."""

from __future__ import annotations

from hub.inbound.hl7batch import Batch, split_block

A = b"MSH|^~\\&|SIH|CHU-X|RELAIS|DAC|20261127214228||ADT^A01|1|P|2.5\rPID|1||1^^^CHU-X^PI\r"
B = b"MSH|^~\\&|SIH|CHU-X|RELAIS|DAC|20261127214229||ADT^A03|2|P|2.5\nPID|1||1^^^CHU-X^PI\n"
FHS, BHS, BHS2 = (b"FHS|^~\\&|SIH|CHU-X||||||||F1", b"BHS|^~\\&|SIH|CHU-X||||||||B1",
                  b"BHS|^~\\&|SIH|CHU-X||||||||B2")


def test_one_message_and_leading_noise_without_text() -> None:
    for lead in (b"", b"\xef\xbb\xbf", b"\r\n", b"\x00 "):
        block = split_block(lead + A)
        assert block.batches == (Batch(b"", (("m", A),)),) and not block.is_batch, lead


def test_several_messages_in_one_block_keep_their_order_and_line_ends() -> None:
    block = split_block(A + B + A)
    assert block.messages == (A, B, A) and len(block.batches) == 1 and not block.is_batch


def test_batches_with_and_without_fhs() -> None:
    block = split_block(FHS + b"\r" + BHS + b"\r" + A + B + b"BTS|2\rFTS|1\r")
    assert block.fhs == FHS and block.batches == (Batch(BHS, (("m", A), ("m", B))),)
    block = split_block(BHS + b"\n" + A + b"BTS|1\n")
    assert block.fhs == b"" and block.batches == (Batch(BHS, (("m", A),)),) and block.is_batch
    # A file of two batches; and a file without BHS at all.
    block = split_block(FHS + b"\r" + BHS + b"\r" + A + b"BTS|1\r" + BHS2 + b"\r" + B + b"BTS|1\rFTS|2\r")
    assert block.batches == (Batch(BHS, (("m", A),)), Batch(BHS2, (("m", B),)))
    block = split_block(FHS + b"\r" + A + b"FTS|1\r")
    assert block.is_batch and block.batches == (Batch(b"", (("m", A),)),)


def test_segments_outside_any_message_are_stray_in_their_place() -> None:
    block = split_block(b"PID|1||9^^^X^PI\r" + A + BHS + b"\rPV1|1|I\r" + B)
    assert block.batches == (Batch(b"", (("s", b"PID|1||9^^^X^PI\r"), ("m", A))),
                             Batch(BHS, (("s", b"PV1|1|I\r"), ("m", B))))
    # A segment merely starting with the letters MSH is no message header.
    assert split_block(b"MSHX|1\r").messages == ()
    # Text that is no segment is noise: no answer is owed to it.
    assert split_block(b"HELLO\r\n" + A + b"keep-alive\r").batches == (Batch(b"", (("m", A + b"keep-alive\r"),)),)
    assert split_block(b"hello world").batches == ()
