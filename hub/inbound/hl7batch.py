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
# Segments without MSH look like `PID|…`: they are a message missing its header (answered AE).
# Anything else between messages (text, stray bytes) is noise and gets no answer.
_SEGMENT = re.compile(rb"[^A-Za-z0-9]{0,8}[A-Z][A-Z0-9]{2}[^A-Za-z0-9\s]")
_LINE_END = re.compile(rb"[\r\n]")


@dataclass(frozen=True)
class Batch:
    """header: the BHS line ("" for messages outside any BHS). items, in the order sent:
    ("m", a message's bytes, MSH first) or ("s", segments that belong to no message: they are
    answered as a message without MSH)."""

    header: bytes
    items: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Block:
    """fhs: the FHS line of a batch file ("" otherwise); batches: one per BHS … BTS, plus one
    without header for messages outside them (the only one for a plain block)."""

    fhs: bytes
    batches: tuple[Batch, ...]

    @property
    def is_batch(self) -> bool:
        return bool(self.fhs) or any(batch.header for batch in self.batches)

    @property
    def messages(self) -> tuple[bytes, ...]:
        return tuple(data for batch in self.batches for kind, data in batch.items if kind == "m")


def _first_line(chunk: bytes) -> tuple[bytes, bytes]:
    m = _LINE_END.search(chunk)
    return (chunk, b"") if m is None else (chunk[: m.start()], chunk[m.end() :])


def split_block(payload: bytes) -> Block:
    """Cut a block at every MSH, FHS, BHS, BTS and FTS segment.

    Segments before the first of them, or after a batch segment's own line, are stray items:
    they will be answered as a message without MSH. Text that is no segment is dropped.
    """
    cuts = [m.start(1) for m in _BOUNDARY.finditer(payload)]
    batches: list[Batch] = []
    fhs = header = b""
    items: list[tuple[str, bytes]] = []

    def close() -> None:
        nonlocal header, items
        if header or items:
            batches.append(Batch(header, tuple(items)))
        header, items = b"", []

    def keep_stray(chunk: bytes) -> None:
        if _SEGMENT.match(chunk):
            items.append(("s", chunk))

    keep_stray(payload[: cuts[0]] if cuts else payload)
    for i, cut in enumerate(cuts):
        chunk = payload[cut : cuts[i + 1] if i + 1 < len(cuts) else len(payload)]
        name = chunk[:3]
        if name == b"MSH":
            items.append(("m", chunk))
            continue
        line, rest = _first_line(chunk)
        if name == b"FHS" and not fhs:
            fhs = line
        elif name == b"BHS":
            close()
            header = line
        elif name in (b"BTS", b"FTS"):
            close()
        keep_stray(rest)
    close()
    return Block(fhs, tuple(batches))
