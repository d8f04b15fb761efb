"""A plain MLLP client over a real TCP socket, for the listener tests."""

from __future__ import annotations

import asyncio
import contextlib

from hub.inbound.mllp import MllpDecoder, frame
from tests.samples_path import SAMPLES

GHH = ("ADT-A01-01.hl7", "ADT-A02-01.hl7", "ADT-A03-01.hl7", "ADT-A04-01.hl7", "ADT-A08-01.hl7",
       "ADT-A11-01.hl7", "ADT-A13-01.hl7")


def sample(name: str) -> bytes:
    return (SAMPLES / "hl7v2" / name).read_bytes()


def msa(ack: bytes, encoding: str = "utf-8") -> tuple[str, str]:
    """(MSA-1, MSA-2) of an acknowledgement."""
    text = ack.decode(encoding)
    assert text.startswith("MSH"), text
    for segment in text.split("\r"):
        if segment.startswith("MSA"):
            fields = segment.split(text[3])
            return fields[1], fields[2]
    raise AssertionError(f"no MSA in {text!r}")


def err_code(ack: bytes) -> str:
    """ERR-3.1 (HL7 table 0357) of a v2.5+ acknowledgement."""
    text = ack.decode("utf-8", "replace")
    segment = next(s for s in text.split("\r") if s.startswith("ERR"))
    return segment.split("|")[3].split("^")[0]


class MllpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = MllpDecoder()
        self._frames: list[bytes] = []

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> MllpClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, payload: bytes) -> bytes:
        await self.write(frame(payload))
        return await self.ack()

    async def ack(self, timeout: float = 30.0) -> bytes:  # noqa: ASYNC109 - a socket read deadline
        async with asyncio.timeout(timeout):
            while not self._frames:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("the listener closed the connection")
                for item in self.decoder.feed(data):
                    assert isinstance(item, bytes), item
                    self._frames.append(item)
        return self._frames.pop(0)

    async def closed_by_peer(self, timeout: float = 30.0) -> bool:  # noqa: ASYNC109
        """True once the listener closes the connection without sending anything more."""
        async with asyncio.timeout(timeout):
            try:
                data = await self.reader.read(65536)
            except ConnectionResetError:
                return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
