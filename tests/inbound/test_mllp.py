from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.inbound.mllp import FrameError, MllpDecoder, frame, message_start

MSG = b"MSH|^~\\&|A|B|C|D|20240306111154||ADT^A01|1|P|2.5\rPID|1||42^^^CHU-X^PI\r"


def test_frame_wraps_payload() -> None:
    assert frame(b"abc") == b"\x0babc\x1c\x0d"


def test_one_frame_in_one_read() -> None:
    assert MllpDecoder().feed(frame(MSG)) == [MSG]


def test_junk_before_start_block_is_skipped() -> None:
    dec = MllpDecoder()
    assert dec.feed(b"\r\nGET / HTTP/1.0\r\n" + frame(MSG) + b"\r\n") == [MSG]
    assert dec.pending == 0


def test_several_frames_in_one_read_and_an_empty_block_is_not_a_message() -> None:
    assert MllpDecoder().feed(frame(b"one") + frame(b"two") + frame(b"") + frame(b" \r\n")) == [b"one", b"two"]


def test_frame_split_across_reads_including_the_end_block() -> None:
    dec = MllpDecoder()
    data = frame(MSG)
    assert dec.feed(data[:10]) == []
    assert dec.pending == 0  # mid-segment: still arriving, nothing an idle answer could deliver
    assert dec.feed(data[10:-2]) == []
    assert dec.pending == len(MSG)  # a whole message held, its end byte not yet here
    assert dec.feed(data[-2:-1]) == [MSG]  # 0x1C ends the block: the 0x0D is not waited for
    assert dec.feed(data[-1:]) == [] and dec.pending == 0


def test_fs_alone_ends_a_block_and_what_follows_outside_a_block_is_noise() -> None:
    # 0x1C never occurs in HL7 text: a sender that omits the 0x0D is answered at once.
    assert MllpDecoder().feed(b"\x0ba\x1cb\x1c\x0d") == [b"a"]
    assert MllpDecoder().feed(b"\x0b" + MSG + b"\x1c") == [MSG]


def test_a_block_that_lost_its_start_byte_is_still_a_message() -> None:
    dec = MllpDecoder()
    assert dec.feed(b"\r\n" + frame(MSG)[1:]) == [MSG]
    assert dec.feed(b"xx" + MSG + b"\x1c\x1c\r\r" + b"\x0b\x0b" + MSG + b"\x1c") == [MSG, MSG]


def test_flush_delivers_an_open_block_or_an_unframed_message_and_drops_noise() -> None:
    dec = MllpDecoder()
    assert dec.feed(b"\x0b" + MSG) == [] and dec.pending == len(MSG)
    assert dec.flush() == [MSG] and dec.pending == 0
    assert dec.feed(b"noise MSH") == [] and dec.pending == 0  # no message start yet
    assert dec.feed(b"|^~\\&|A\r") == [] and dec.pending > 0
    assert dec.flush() == [b"MSH|^~\\&|A\r"]
    assert dec.feed(b"\r\n  garbage \r\n") == [] and dec.pending == 0
    assert dec.flush() == []


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
    cut = MllpDecoder().feed(b"\x0b" + MSG[:30] + frame(b"whole"))
    assert cut == [FrameError("truncated"), b"whole"]
    assert isinstance(cut[0], FrameError) and cut[0].head == MSG[:30]
    # A repeated start byte, or noise without a message before it, is not a message.
    assert MllpDecoder().feed(b"\x0b\x0bjunk\x0b" + frame(b"whole")) == [b"whole"]


payloads = (st.binary(max_size=40).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))
            .filter(lambda b: bool(b.strip())))
junk = (st.binary(max_size=6).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))
        .filter(lambda b: message_start(b) < 0))


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


def test_flush_never_reads_a_block_cut_mid_segment_as_complete() -> None:
    dec = MllpDecoder()
    assert dec.feed(b"\x0b" + MSG[:-5]) == []
    assert dec.pending == 0  # still arriving: the listener keeps waiting for the rest
    assert dec.feed(MSG[-5:] + b"  ") == [] and dec.pending == len(MSG) + 2
    assert dec.flush() == [MSG]
    assert dec.feed(b"\x0b" + MSG[:-5]) == []
    flushed = dec.flush()
    assert flushed == [FrameError("truncated")]
    assert isinstance(flushed[0], FrameError) and flushed[0].head == MSG[:-5]
