from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.inbound.mllp import FrameError, MllpDecoder, frame

MSG = b"MSH|^~\\&|A|B|C|D|20240306111154||ADT^A01|1|P|2.5\rPID|1||42^^^CHU-X^PI\r"


def test_frame_wraps_payload() -> None:
    assert frame(b"abc") == b"\x0babc\x1c\x0d"


def test_one_frame_in_one_read() -> None:
    assert MllpDecoder().feed(frame(MSG)) == [MSG]


def test_junk_before_start_block_is_skipped() -> None:
    dec = MllpDecoder()
    assert dec.feed(b"\r\nGET / HTTP/1.0\r\n" + frame(MSG) + b"\r\n") == [MSG]
    assert dec.pending == 0


def test_several_frames_in_one_read() -> None:
    assert MllpDecoder().feed(frame(b"one") + frame(b"two") + frame(b"")) == [b"one", b"two", b""]


def test_frame_split_across_reads_including_the_end_block() -> None:
    dec = MllpDecoder()
    data = frame(MSG)
    assert dec.feed(data[:10]) == []
    assert dec.feed(data[10:-1]) == []  # ends on 0x1C: not yet a frame
    assert dec.pending > 0
    assert dec.feed(data[-1:]) == [MSG]


def test_lone_fs_inside_payload_is_data() -> None:
    assert MllpDecoder().feed(b"\x0ba\x1cb\x1c\x0d") == [b"a\x1cb"]


def test_too_large_reported_once_then_next_frame_read() -> None:
    dec = MllpDecoder(max_frame=8)
    out = dec.feed(b"\x0b" + b"x" * 5)
    out += dec.feed(b"y" * 50)
    out += dec.feed(b"z" * 50 + b"\x1c\x0d" + frame(b"ok"))
    assert out == [FrameError("too_large"), b"ok"]


def test_frame_of_exactly_max_frame_passes() -> None:
    assert MllpDecoder(max_frame=4).feed(frame(b"abcd")) == [b"abcd"]
    assert MllpDecoder(max_frame=4).feed(frame(b"abcde")) == [FrameError("too_large")]


def test_start_block_inside_a_frame_reports_truncation_and_restarts() -> None:
    assert MllpDecoder().feed(b"\x0bhalf a mess" + frame(b"whole")) == [
        FrameError("truncated"),
        b"whole",
    ]


payloads = st.binary(max_size=40).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))
junk = st.binary(max_size=6).map(lambda b: b.replace(b"\x0b", b""))


def _feed_in_pieces(dec: MllpDecoder, stream: bytes, cuts: list[int]) -> list[bytes | FrameError]:
    out: list[bytes | FrameError] = []
    prev = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        out += dec.feed(stream[prev:cut])
        prev = max(prev, cut)
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(junk, payloads), max_size=6),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_frames_do_not_depend_on_how_the_stream_is_split(
    parts: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(j + frame(p) for j, p in parts)
    assert _feed_in_pieces(MllpDecoder(), stream, cuts) == [p for _, p in parts]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.lists(st.integers(0, 10_000), max_size=12), st.integers(1, 16))
def test_any_byte_stream_gives_the_same_result_however_split(
    stream: bytes, cuts: list[int], max_frame: int
) -> None:
    whole = MllpDecoder(max_frame).feed(stream)
    assert _feed_in_pieces(MllpDecoder(max_frame), stream, cuts) == whole
