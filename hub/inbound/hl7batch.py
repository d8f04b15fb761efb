"""One MLLP block → the HL7 messages it carries, pure (bytes in, bytes out).

A block normally carries one message. Interface engines also send several messages
concatenated in one block, and HL7 batches (v2.5 §2.10.3: `[FHS] BHS {MSH …} BTS [FTS]`).
Each message is cut out as bytes, before decoding: each one declares its own charset (MSH-18).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Block", "split_block"]

# A segment name at the start of a line, followed by a field separator (or the end). At the
# very start of the block a few non-alphanumeric bytes may come first (a BOM, a NUL, spaces).
_BOUNDARY = re.compile(
    rb"(?:\A[^A-Za-z0-9\r\n]{0,8}?|(?<=[\r\n])[^\S\r\n]*)(MSH|FHS|BHS|BTS|FTS)(?=[^A-Za-z0-9]|\Z)")
_TEXT = re.compile(rb"[A-Za-z0-9]")
_LINE_END = re.compile(rb"[\r\n]")


@dataclass(frozen=True)
class Block:
    """messages: each message's bytes, MSH first, in the order sent.
    stray: for each run of segments that belongs to no message (no MSH before it), its bytes,
    placed in `order` so that the answers keep the sender's order.
    fhs / bhs: the batch header lines when the block is a batch ("" otherwise).
    order: ("m", i) for messages[i], ("s", i) for stray[i].
    """

    messages: tuple[bytes, ...]
    stray: tuple[bytes, ...]
    order: tuple[tuple[str, int], ...]
    fhs: bytes = b""
    bhs: bytes = b""

    @property
    def is_batch(self) -> bool:
        return bool(self.fhs or self.bhs)


def _first_line(chunk: bytes) -> tuple[bytes, bytes]:
    m = _LINE_END.search(chunk)
    return (chunk, b"") if m is None else (chunk[: m.start()], chunk[m.end() :])


def split_block(payload: bytes) -> Block:
    """Cut a block at every MSH, FHS, BHS, BTS and FTS segment.

    Bytes before the first of them, or after a batch segment's own line, that hold any letter
    or digit are `stray`: they will be answered as a message without MSH.
    """
    cuts = [m.start(1) for m in _BOUNDARY.finditer(payload)]
    messages: list[bytes] = []
    stray: list[bytes] = []
    order: list[tuple[str, int]] = []
    fhs = bhs = b""

    def keep_stray(chunk: bytes) -> None:
        if _TEXT.search(chunk):  # without a letter or a digit it is noise, not a message
            order.append(("s", len(stray)))
            stray.append(chunk)

    keep_stray(payload[: cuts[0]] if cuts else payload)
    for i, cut in enumerate(cuts):
        chunk = payload[cut : cuts[i + 1] if i + 1 < len(cuts) else len(payload)]
        name = chunk[:3]
        if name == b"MSH":
            order.append(("m", len(messages)))
            messages.append(chunk)
            continue
        line, rest = _first_line(chunk)
        if name == b"FHS" and not fhs:
            fhs = line
        elif name == b"BHS" and not bhs:
            bhs = line
        keep_stray(rest)
    return Block(tuple(messages), tuple(stray), tuple(order), fhs, bhs)
