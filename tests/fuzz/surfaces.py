"""Property-based fuzzing of every surface that reads outside input, with a count of inputs tried.

Used by tests/fuzz/ (bounded max_examples) and bench/reliability.py (many more). Each `fuzz_*`
returns how many inputs it tried; any crash (an exception that is not the surface's own clear
error) makes hypothesis fail with the smallest input that caused it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.commands.parser import UsageError, parse
from hub.commands.registry import build_registry
from hub.commands.usage import usage_line
from hub.i18n.catalog import Catalog
from hub.inbound.hl7v2 import Hl7Error, IsAck
from hub.inbound.hl7v2 import parse as parse_hl7
from hub.inbound.mllp import FrameError, MllpDecoder, frame, message_start
from tests.samples_path import SAMPLES

SPECS = build_registry().specs
WORDS = sorted({w for spec in SPECS for w in (*spec.name.split(), *spec.alias.split())})
OPTIONS = sorted({f"--{n}" for spec in SPECS for o in spec.opts for n in (o.name, o.alias) if n})
TOKENS = st.one_of(
    st.sampled_from(WORDS), st.sampled_from(OPTIONS), st.text(max_size=12),
    st.sampled_from(['"', "'", "\\", "@a:b", "@x:localhost", "2026-02-30", "R-2026-0001", "--", "-", "0", "-1",
                     "9" * 30, "\u202e", "\x00", "é", "中文", "home", "gp", "in_place"]),
)
COMMAND_TEXT = st.one_of(
    st.text(max_size=200).map(lambda t: "!" + t),
    st.lists(TOKENS, max_size=10).map(lambda ws: "!" + " ".join(ws)),
)


@dataclass
class Count:
    tried: int = 0


def _settings(n: int) -> Any:
    # The suite replays the same inputs every run, so a CI failure is reproducible rather than a
    # roll of the dice; bench/reliability.py sets RELAIS_FUZZ_EXPLORE=1 to draw new ones.
    explore = os.environ.get("RELAIS_FUZZ_EXPLORE") == "1"
    return settings(max_examples=n, deadline=None, database=None, derandomize=not explore,
                    suppress_health_check=list(HealthCheck))


def fuzz_command_parser(n: int) -> int:
    """Any text after `!`: an Invocation or a UsageError with a catalog key, never anything else."""
    count = Count()
    french = Catalog("fr")

    @_settings(n)
    @given(COMMAND_TEXT)
    def run(text: str) -> None:
        count.tried += 1
        try:
            inv = parse(text, SPECS)
        except UsageError as exc:
            assert exc.key.startswith("error."), exc.key
            if exc.spec is not None:  # the reply can show the correct usage
                line = usage_line(exc.spec, french)
                assert line.startswith("!") and "<" not in line
            return
        assert inv.spec in SPECS

    run()
    return count.tried


HL7_SAMPLES = [p.read_bytes() for p in sorted((SAMPLES / "hl7v2").iterdir()) if p.is_file()]


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for pos, cut, insert in edits:
        if not out:
            out += insert
            continue
        at = pos % len(out)
        out[at:at + cut] = insert
    return bytes(out)


HL7_INPUT = st.one_of(
    st.binary(max_size=400).map(lambda b: b"MSH|^~\\&|" + b),
    st.binary(max_size=300),
    st.builds(_mutate, st.sampled_from(HL7_SAMPLES),
              st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 8),
                                 st.one_of(st.binary(max_size=6),
                                           st.sampled_from([b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n",
                                                            b"\xff", b"\xc3", b"MSH|", b"PID|", b"\x0b",
                                                            b"\x1c\r"]))),
                       min_size=1, max_size=6)),
)


def fuzz_hl7(n: int) -> int:
    """Any bytes: an Alert, IsAck, or Hl7Error with an ACK code and a table-0357 error code."""
    count = Count()

    @_settings(n)
    @given(HL7_INPUT)
    def run(raw: bytes) -> None:
        count.tried += 1
        try:
            alert = parse_hl7(raw)
        except IsAck:
            return
        except Hl7Error as exc:
            assert exc.code in ("AE", "AR"), exc.code
            assert exc.reason
            return
        assert alert.identifiers and alert.event_time.tzinfo is not None

    run()
    return count.tried


def fuzz_mllp(n: int) -> int:
    """Framed payloads cut anywhere, with noise between frames: the decoder gives back exactly the
    payloads, in order; junk alone never yields a frame; held bytes stay under the limit.
    (A blank block is no message; 0x1C alone ends a block; noise holding a message start is a
    message that lost its start byte: tests/inbound/test_mllp.py.)"""
    count = Count()
    payload = (st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))
               .filter(lambda b: bool(b.strip())))
    noise = (st.binary(max_size=20).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))
             .filter(lambda b: message_start(b) < 0))

    @_settings(n)
    @given(st.lists(st.tuples(noise, payload), max_size=6), st.lists(st.integers(1, 64), min_size=1, max_size=40),
           st.binary(max_size=200))
    def run(frames: list[tuple[bytes, bytes]], cuts: list[int], junk: bytes) -> None:
        count.tried += 1
        stream = b"".join(n + frame(p) for n, p in frames)
        decoder = MllpDecoder(max_frame=1024)
        got: list[bytes | FrameError] = []
        pos, i = 0, 0
        while pos < len(stream):
            step = cuts[i % len(cuts)]
            got += decoder.feed(stream[pos:pos + step])
            assert decoder.pending <= 1025
            pos, i = pos + step, i + 1
        assert got == [p for _n, p in frames]
        assert decoder.pending == 0
        # Arbitrary bytes: only FrameErrors or payloads, never an exception, bounded memory.
        other = MllpDecoder(max_frame=1024)
        for item in other.feed(junk) + other.feed(junk[::-1]):
            assert isinstance(item, bytes | FrameError)
        assert other.pending <= 1025

    run()
    return count.tried


ADMIT = json.loads((SAMPLES / "fhir" / "admit-notification-message-bundle-01.json").read_text(encoding="utf-8"))
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                    max_leaves=20)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


ADMIT_PATHS = _paths(ADMIT)[1:]


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, value)}
    copy = list(doc)
    copy[head] = _replace(copy[head], rest, value)
    return copy


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(doc, dict):
            return {k: v for k, v in doc.items() if k != path[0]}
        return [v for i, v in enumerate(doc) if i != path[0]]
    head = path[0]
    if isinstance(doc, dict):
        return {**doc, head: _delete(doc[head], path[1:])}
    copy = list(doc)
    copy[head] = _delete(copy[head], path[1:])
    return copy


#: Deeply nested JSON (issue 17): the parsers' recursion must not turn it into a 500.
DEEP = st.builds(lambda opener, depth, inside: (opener * depth + inside).encode(),
                 st.sampled_from(["[", '{"a":', '[{"x":', "[[", '{"resourceType":"Bundle","entry":[']),
                 st.integers(min_value=60, max_value=100_000), st.sampled_from(["", "1", "]", "}"]))



def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


FHIR_BODY = st.one_of(
    st.binary(max_size=300),
    DEEP,
    st.builds(lambda p, d: json.dumps(_replace(ADMIT, p, _nested(d))).encode(), st.sampled_from(ADMIT_PATHS),
              st.integers(min_value=50, max_value=900)),
    JSON.map(lambda d: json.dumps(d).encode()),
    st.builds(lambda p, v: json.dumps(_replace(ADMIT, p, v)).encode(), st.sampled_from(ADMIT_PATHS), JSON),
    st.builds(lambda p: json.dumps(_delete(ADMIT, p)).encode(), st.sampled_from(ADMIT_PATHS)),
)
FHIR_HEADERS = st.sampled_from(["good", "good", "good", "none", "wrong", "basic", "bad-type"])
#: What the endpoint may answer: accepted (200), client errors with an OperationOutcome.
FHIR_STATUSES = {200, 400, 401, 413, 415, 422}


def fuzz_fhir(n: int, post: Callable[[bytes, str], Awaitable[tuple[int, dict[str, Any]]]],
              loop: asyncio.AbstractEventLoop) -> int:
    """Bodies posted over a real socket: always one of FHIR_STATUSES with an OperationOutcome;
    never a 500. `post(body, header_kind)` runs on `loop` (in another thread)."""
    count = Count()

    @_settings(n)
    @given(FHIR_BODY, FHIR_HEADERS)
    def run(body: bytes, headers: str) -> None:
        count.tried += 1
        status, outcome = asyncio.run_coroutine_threadsafe(post(body, headers), loop).result(60)
        assert status in FHIR_STATUSES, (status, outcome)
        assert outcome.get("resourceType") == "OperationOutcome", outcome
        if headers != "good":
            assert status in (401, 415), status
        elif status != 200:
            assert outcome["issue"][0]["severity"] == "error"

    run()
    return count.tried
