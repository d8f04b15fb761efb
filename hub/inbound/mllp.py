"""MLLP framing, pure: bytes in, frames out (no socket here).

A frame is `0x0B payload 0x1C 0x0D`. Bytes outside a frame are skipped; a frame may arrive
in pieces or several to a read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["END_BLOCK", "START_BLOCK", "FrameError", "MllpDecoder", "frame"]

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAX_FRAME = 1 << 20
HEAD_BYTES = 4096


@dataclass(frozen=True)
class FrameError:
    """A frame that could not be delivered; it still deserves an answer (an AE ACK).

    too_large: the payload exceeded max_frame; the rest of it is skipped.
    truncated: a start block arrived before the end of the current frame.
    head: the first bytes of the dropped payload (up to HEAD_BYTES), so that the answer can
    still quote its MSH-10 when MSH was there.
    """

    reason: Literal["too_large", "truncated"]
    head: bytes = field(default=b"", compare=False, repr=False)


class MllpDecoder:
    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._in_frame = False
        self._scanned = 0  # bytes of _buf already searched for an end/start block

    @property
    def pending(self) -> int:
        """Bytes held for an unfinished frame (0 between frames)."""
        return len(self._buf) if self._in_frame else 0

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        out: list[bytes | FrameError] = []
        self._buf += data
        while True:
            if not self._in_frame:
                start = self._buf.find(START_BLOCK)
                if start < 0:
                    self._buf.clear()
                    return out
                del self._buf[: start + 1]
                self._in_frame = True
                self._scanned = 0
            # Resume the search one byte back: an end block may straddle two reads.
            from_ = max(0, self._scanned - 1)
            end = self._buf.find(END_BLOCK, from_)
            restart = self._buf.find(START_BLOCK, from_, end if end >= 0 else len(self._buf))
            if restart >= 0 and restart <= self.max_frame:
                out.append(FrameError("truncated", bytes(self._buf[: min(restart, HEAD_BYTES)])))
                del self._buf[:restart]
                self._in_frame = False
                continue
            if end >= 0 and end <= self.max_frame:
                out.append(bytes(self._buf[:end]))
                del self._buf[: end + len(END_BLOCK)]
                self._in_frame = False
                continue
            # No end (or too far): the last byte may still be the 0x1C of an end block.
            if end >= 0 or len(self._buf) - 1 > self.max_frame:
                out.append(FrameError("too_large", bytes(self._buf[:HEAD_BYTES])))
                del self._buf[: self.max_frame + 1]
                self._in_frame = False
                continue
            self._scanned = len(self._buf)
            return out


def frame(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK
