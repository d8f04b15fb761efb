"""MLLP framing, pure: bytes in, blocks out (no socket here).

A block is `0x0B payload 0x1C 0x0D` (HL7 v2.5 Appendix C, MLLP release 1). Interface engines
are not always that tidy, so the stream is read as pieces between delimiters:

- `0x1C` ends a block on its own: the `0x0D` after it is optional (0x1C never occurs in HL7
  text, so nothing is waited for once it arrives);
- a block (`0x0B … 0x1C`) that is not blank is delivered, whatever it holds;
- bytes outside a block are noise and skipped, unless they hold a message (a segment starting
  `MSH`, `FHS` or `BHS`) ended by `0x1C`: a block that lost its start byte is still delivered;
- a piece that holds a message but is cut by a new `0x0B` is reported `truncated`; one longer
  than `max_frame` is reported `too_large` and the rest of it skipped (memory stays bounded);
- `flush()` is called when the sender went quiet with a block still open that ends with a
  whole segment (`pending`): a block that lost its end byte is delivered as it stands. One that
  stops mid-segment is still arriving and is waited for.

The result never depends on how the stream was cut into reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["END_BLOCK", "START_BLOCK", "FrameError", "MllpDecoder", "frame", "message_start"]

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
_VT, _FS = 0x0B, 0x1C
DEFAULT_MAX_FRAME = 8 << 20
HEAD_BYTES = 4096
# A segment that starts a message or a batch; its name is followed by the field separator.
_MESSAGE = re.compile(rb"(?:MSH|FHS|BHS)[^A-Za-z0-9\s]")


@dataclass(frozen=True)
class FrameError:
    """A block that could not be delivered; it still deserves an answer (an AE ACK).

    too_large: the payload exceeded max_frame; the rest of it is skipped.
    truncated: a start block arrived before the end of the current block.
    head: the first bytes of the dropped payload (up to HEAD_BYTES), so that the answer can
    still quote its MSH-10 when MSH was there.
    """

    reason: Literal["too_large", "truncated"]
    head: bytes = field(default=b"", compare=False, repr=False)


def message_start(data: bytes | bytearray, end: int | None = None) -> int:
    """Offset of the first MSH/FHS/BHS segment in data[:end], -1 when there is none."""
    m = _MESSAGE.search(data, 0, len(data) if end is None else end)
    return -1 if m is None else m.start()


class MllpDecoder:
    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._in_frame = False
        self._skipping = False  # inside a piece already reported too large
        self._scanned = 0  # bytes of _buf already searched for a delimiter
        self._marker = -1  # offset of a message start in the open piece (-1: none seen yet)

    @property
    def pending(self) -> int:
        """Bytes of an open block that `flush()` would deliver: a message ending with a whole
        segment. 0 when only noise is held, or while the block stops mid-segment (its sender
        is still sending, however slowly: it is not waiting for an answer)."""
        if self._skipping or not self._buf or self._buf.isspace():
            return 0
        if not (self._in_frame or self._marker >= 0):
            return 0
        last = len(self._buf) - 1
        while last >= 0 and self._buf[last] in (0x20, 0x09):
            last -= 1
        return len(self._buf) if self._buf[last] in (0x0D, 0x0A) else 0

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        out: list[bytes | FrameError] = []
        self._buf += data
        while True:
            at = self._next_delimiter()
            if at < 0:
                self._hold(out)
                return out
            delimiter = self._buf[at]
            piece = bytes(self._buf[:at])
            del self._buf[: at + 1]
            self._scanned, self._marker = 0, -1
            if self._skipping:
                self._skipping = False
            elif len(piece) > self.max_frame:
                self._too_large(piece, out)
            elif delimiter == _VT:
                start = message_start(piece)
                if start >= 0:  # a message, cut by the next block before its end
                    out.append(FrameError("truncated", piece[start : start + HEAD_BYTES]))
            else:
                self._deliver(piece, out)
            self._in_frame = delimiter == _VT

    def flush(self) -> list[bytes | FrameError]:
        """The sender went quiet: deliver what an open block holds; drop noise.

        Only a block that ends with a whole segment (CR or LF) is delivered; one that stops
        mid-segment was cut in transit and is reported `truncated`, never read as complete.
        """
        out: list[bytes | FrameError] = []
        held = bytes(self._buf).rstrip(b" \t")
        if not self._skipping and (self._in_frame or message_start(held) >= 0) and held.strip():
            if held.endswith((b"\r", b"\n")):
                self._deliver(held, out)
            else:
                start = 0 if self._in_frame else message_start(held)
                out.append(FrameError("truncated", held[start : start + HEAD_BYTES]))
        self._buf.clear()
        self._scanned, self._marker = 0, -1
        self._skipping = self._in_frame = False
        return out

    def _next_delimiter(self) -> int:
        found = [i for i in (self._buf.find(START_BLOCK, self._scanned),
                             self._buf.find(b"\x1c", self._scanned)) if i >= 0]
        return min(found) if found else -1

    def _hold(self, out: list[bytes | FrameError]) -> None:
        """No delimiter yet: keep the open piece, up to max_frame bytes."""
        if self._skipping:
            self._buf.clear()
        else:
            if self._marker < 0 and not self._in_frame:
                self._marker = message_start(self._buf[max(0, self._scanned - 3) :])
                if self._marker >= 0:
                    self._marker += max(0, self._scanned - 3)
            if len(self._buf) > self.max_frame:
                self._too_large(bytes(self._buf[: self.max_frame + 1]), out)
                self._buf.clear()
                self._skipping = True
        self._scanned = len(self._buf)

    def _too_large(self, piece: bytes, out: list[bytes | FrameError]) -> None:
        head = piece[: self.max_frame + 1]
        start = 0 if self._in_frame else message_start(head)
        if start >= 0:  # framed, or holding a message: it deserves an answer; noise does not
            out.append(FrameError("too_large", head[start : start + HEAD_BYTES]))

    def _deliver(self, piece: bytes, out: list[bytes | FrameError]) -> None:
        if self._in_frame:
            if piece and not piece.isspace():
                out.append(piece)
            return
        start = message_start(piece)
        if start >= 0:
            out.append(piece[start:])


def frame(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK
