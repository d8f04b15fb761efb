"""HL7 v2 ADT → Alert, pure (bytes in, dataclass out).

The message is tokenised here rather than with python-hl7's accessors: those unescape
through a helper that logs whole field values (personal data) on odd escapes, raises on
some of them, and python-hl7 drops every segment after MSH when segments end with LF.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Literal

from hub.domain.alerts import Alert, AlertEvent, MessageRefused, PatientId
from hub.domain.transitions import PARIS as _PARIS  # the default territory: `[care] timezone` (SPEC §5)

__all__ = [
    "EVENTS",
    "PRODUCTION",
    "Hl7Error",
    "IsAck",
    "MshHeader",
    "NotActed",
    "decode",
    "digest",
    "normalise",
    "parse",
    "processing_id",
    "read_header",
]

AckCode = Literal["AE", "AR"]

EVENTS: dict[str, AlertEvent] = {
    "A01": AlertEvent.admission,
    "A04": AlertEvent.admission,
    "A05": AlertEvent.admission,
    "A06": AlertEvent.admission,
    "A02": AlertEvent.transfer,
    "A03": AlertEvent.discharge,
    "A11": AlertEvent.cancel_admission,
    "A12": AlertEvent.cancel_transfer,
    "A13": AlertEvent.cancel_discharge,
    # The cancellations of the other events acted on: dropping them as "not acted on" left a
    # cancelled pre-admission (A05, an admission here) or leave standing, without a word.
    "A38": AlertEvent.cancel_admission,  # cancel pre-admit (A05)
    "A52": AlertEvent.cancel_leave,  # cancel leave of absence (A21)
    "A53": AlertEvent.cancel_leave_return,  # cancel patient returns from leave of absence (A22)
    "A21": AlertEvent.leave,
    "A22": AlertEvent.leave_return,
    "A08": AlertEvent.update,
    "A40": AlertEvent.merge,
    # IHE PAM France: movement update. Acted on only when it changes the location of the
    # movement it names (ZBE-1), like an A08 (SPEC §7).
    "Z99": AlertEvent.update,
}
_TRIGGER = re.compile(r"[AZ][0-9A-Z]{2}")
#: MSH-11.1 processing ID (HL7 table 0103): P production, T training, D debugging.
PROCESSING_IDS = frozenset({"P", "T", "D"})
#: What a production receiver takes (`[alerts] processing_ids`, SPEC §7): a training or debugging
#: message from a test engine pointed at production describes a stay that never happened.
PRODUCTION = frozenset({"P"})
_TRANSFERS = frozenset({AlertEvent.transfer, AlertEvent.cancel_transfer})

# MSH-18 (HL7 table 0211) → Python codec; anything else falls back to UTF-8 then Latin-1.
_CHARSETS = {
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "ASCII": "ascii",
}
_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?\d*([+-]\d{4})?")
_VERSION = re.compile(r"2\.(\d+)(?:\.\d+)*")


@dataclass(frozen=True)
class MshHeader:
    """What an ACK needs from MSH, fields kept raw (escaped, in the inbound separators)."""

    separators: str  # MSH-1 + MSH-2, e.g. "|^~\\&"
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str  # MSH-9.1
    trigger: str  # MSH-9.2
    control_id: str  # MSH-10
    processing_id: str  # MSH-11
    version: str  # MSH-12, e.g. "2.5^FRA^2.11"
    charset: str  # MSH-18, raw ("" when absent)
    encoding: str  # the Python codec the message was decoded with


class Hl7Error(MessageRefused):
    """A message we answer with AE (content error) or AR (not supported).

    `error_code` is from HL7 table 0357; `header` is None when MSH itself was unreadable.
    `reason` never quotes message content; `key` is its short name for logs and metric labels.
    """

    def __init__(
        self,
        code: AckCode,
        reason: str,
        control_id: str = "",
        *,
        error_code: str = "207",
        header: MshHeader | None = None,
        key: str = "invalid",
    ) -> None:
        super().__init__(f"{code} {error_code}: {reason}")
        self.code: AckCode = code
        self.reason = reason
        self.control_id = control_id
        self.error_code = error_code
        self.header = header
        self.key = key


class NotActed(MessageRefused):
    """An ADT event Relais does not act on (A28, A31, A47…): acknowledged AA, counted, not kept."""

    def __init__(self, header: MshHeader, trigger: str) -> None:
        super().__init__(f"ADT {trigger}")
        self.header = header
        self.trigger = trigger


class IsAck(MessageRefused):
    """The frame is itself an acknowledgement: it must never be acknowledged."""

    def __init__(self, header: MshHeader) -> None:
        super().__init__(f"ACK {header.control_id}")
        self.header = header


# ---------------------------------------------------------------- bytes → text


def _declared_charset(raw: bytes) -> str:
    """MSH-18 read from the bytes, before any decoding (its value is ASCII)."""
    line = re.split(rb"[\r\n]", raw.lstrip(b"\xef\xbb\xbf\r\n"), maxsplit=1)[0]
    if not line.startswith(b"MSH") or len(line) < 5:
        return ""
    sep, component = line[3:4], line[4:5]
    fields = line.split(sep)
    if len(fields) <= 17:
        return ""
    value = fields[17].split(component, 1)[0] if component != sep else fields[17]
    return value.decode("ascii", "replace").strip()


def _codec_for(raw: bytes) -> str:
    codec = _CHARSETS.get(_declared_charset(raw).upper())
    for candidate in (codec, "utf-8"):
        if candidate is None:
            continue
        try:
            raw.decode(candidate)
        except UnicodeDecodeError:
            continue
        return candidate
    return "latin-1"  # decodes any byte string


def decode(raw: bytes) -> str:
    """Decode per MSH-18; undeclared or wrong charsets fall back to UTF-8, then Latin-1."""
    return raw.decode(_codec_for(raw))


def normalise(text: str) -> str:
    """CR, LF or CRLF segment ends → CR; blank lines and a leading BOM dropped."""
    text = text.lstrip("\ufeff").replace("\r\n", "\r").replace("\n", "\r")
    return "\r".join(seg for seg in text.split("\r") if seg.strip())


# ---------------------------------------------------------------- tokenising


@dataclass(frozen=True)
class _Delims:
    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str
    codec: str = "utf-8"  # the message's character set, which \Xhh\ escapes are bytes of


@dataclass(frozen=True)
class _Segment:
    name: str
    fields: tuple[str, ...]  # fields[n] is field n (MSH: fields[1] is MSH-1)
    d: _Delims = field(repr=False)

    def raw(self, n: int) -> str:
        return self.fields[n] if 0 < n < len(self.fields) else ""

    def reps(self, n: int) -> list[str]:
        return [rep for rep in self.raw(n).split(self.d.repetition) if rep]

    def get(self, n: int, c: int = 1, s: int = 1, *, rep: int = 1) -> str:
        reps = self.raw(n).split(self.d.repetition)
        return _part(reps[rep - 1], self.d, c, s) if rep <= len(reps) else ""


def _part(rep: str, d: _Delims, c: int = 1, s: int = 1) -> str:
    comps = rep.split(d.component)
    if c > len(comps):
        return ""
    subs = comps[c - 1].split(d.subcomponent)
    if s > len(subs) or subs[s - 1].strip() == _NULL:
        return ""  # `""` is HL7's explicit null: never shown, never compared (v2.5 §2.5.3)
    return _unescape(subs[s - 1], d).strip()


_NULL = '""'
_ESCAPES = {"F": "field", "S": "component", "T": "subcomponent", "R": "repetition", "E": "escape"}
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_SINGLE_BYTE_SET = re.compile(r"C[0-9A-Fa-f]{4}")  # \Cxxyy\: ESC xx yy, a single-byte character set
_MULTI_BYTE_SET = re.compile(r"M(?:[0-9A-Fa-f]{2}){2,3}")  # \Mxxyy[zz]\: ESC xx yy [zz], a multi-byte set
#: The ISO 2022 designations (after ESC) of the multi-byte sets of HL7 table 0211 that the
#: iso2022_jp_2 codec reads: JIS X 0208 (ISO-IR 87, old and new), GB 2312 (ISO-IR 58),
#: KS X 1001 (ISO-IR 149) and JIS X 0212 (ISO-IR 159), designated to G0.
_WIDE_SETS = frozenset({b"$@", b"$B", b"$A", b"$(C", b"$(D"})
#: Stands, inside the parser, for an escape that could not be decoded; shown as "?" (parse()).
UNREAD = "\ue000"


def _printable(text: str) -> str:
    """A decoded CR, LF or other control character would break a notice line: a space."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _hex_text(data: bytes, codec: str) -> str:
    """\\Xhh\\ bytes are characters of the message's character set (v2.5 §2.7.3): `é` is
    `\\XE9\\` in ISO-8859-1, `\\XC3A9\\` in UTF-8. A sender whose escapes do not fit its
    MSH-18 gets the fallback its message bytes get (`_codec_for`): UTF-8, then Latin-1."""
    for candidate in dict.fromkeys((codec, "utf-8")):
        try:
            return _printable(data.decode(candidate))
        except (UnicodeDecodeError, LookupError):
            continue
    return _printable(data.decode("latin-1"))


def _wide_text(run: bytes) -> str:
    """The text after a \\Mxxyyzz\\ escape, as the ISO 2022 stream it stands for (v2.5 §2.7.4):
    JIS X 0208 (`\\M2442\\`), JIS X 0212, GB 2312, KS X 1001; UNREAD for any other set."""
    if run[1:4] not in _WIDE_SETS and run[1:3] not in _WIDE_SETS:
        return UNREAD
    try:
        return _printable((run + b"\x1b(B").decode("iso2022_jp_2"))
    except UnicodeDecodeError:
        return UNREAD


def _unescape(value: str, d: _Delims) -> str:
    """HL7 escapes (v2.5 §2.7): separators restored, \\Xhh\\ decoded in the message's
    character set, \\Mxxyyzz\\ runs decoded, character set switches and formatting dropped.
    An escape that cannot be decoded (\\Zxx\\, an unknown one, a multi-byte run in a set not
    known here) becomes UNREAD, never silently nothing or U+FFFD: the rest stays readable."""
    if not d.escape or d.escape not in value:
        return value
    out: list[str] = []
    hex_run = bytearray()  # adjacent \Xhh\ escapes: one byte string (engines split a UTF-8 character)
    wide: bytearray | None = None  # the ISO 2022 bytes since a \Mxxyyzz\, decoded as one run

    def flush() -> None:
        nonlocal wide
        if hex_run:
            out.append(_hex_text(bytes(hex_run), d.codec))
            hex_run.clear()
        if wide is not None:
            out.append(_wide_text(bytes(wide)))
            wide = None

    parts = value.split(d.escape)
    out.append(parts[0])
    i = 1
    while i < len(parts):
        if i + 1 >= len(parts):  # unterminated: keep it literally
            flush()
            out.append(d.escape + parts[i])
            break
        seq, text = parts[i], parts[i + 1]
        if seq.startswith("X") and _HEX.fullmatch(seq[1:]):
            if wide is not None:  # the end of a multi-byte run
                flush()
            hex_run += bytes.fromhex(seq[1:])
        else:
            flush()
            if seq in _ESCAPES:
                out.append(getattr(d, _ESCAPES[seq]))
            elif _MULTI_BYTE_SET.fullmatch(seq):
                wide = bytearray(b"\x1b" + bytes.fromhex(seq[1:]))
            elif seq.startswith((".br", ".sp", ".in", ".ti", ".sk", ".ce")):
                out.append(" ")
            elif seq not in ("H", "N") and not _SINGLE_BYTE_SET.fullmatch(seq):
                out.append(UNREAD)
            # \H\ \N\ (highlighting) are dropped; after \Cxxyy\ the text is in the message's charset
        if text:
            if wide is not None:
                try:
                    wide += text.encode("ascii")  # a multi-byte ISO 2022 run is 7-bit
                except UnicodeEncodeError:
                    wide = None
                    out.append(UNREAD)
                    out.append(text)
            else:
                flush()
                out.append(text)
        i += 2
    flush()
    return "".join(out)


def _delims(text: str) -> _Delims:
    if not text.startswith("MSH") or len(text) < 5:
        raise Hl7Error("AE", "no MSH segment", error_code="100", key="no_msh")
    fs = text[3]
    enc = text[4:].split(fs, 1)[0].split("\r", 1)[0]
    if len(enc) < 1 or len(enc) > 5:
        raise Hl7Error("AE", "invalid MSH-2 encoding characters", error_code="102", key="bad_separators")
    chars = (enc + "\0\0\0\0")[:4]
    component, repetition, escape, subcomponent = (
        chars[0],
        chars[1] if chars[1] != "\0" else "~",
        chars[2] if chars[2] != "\0" else "",
        chars[3] if chars[3] != "\0" else "&",
    )
    used = [fs, component, repetition, subcomponent] + ([escape] if escape else [])
    if len(set(used)) != len(used) or any(ch.isalnum() or ch.isspace() for ch in used):
        raise Hl7Error("AE", "invalid MSH-1/MSH-2 separators", error_code="102", key="bad_separators")
    return _Delims(fs, component, repetition, escape, subcomponent)


def _segments(text: str, d: _Delims) -> list[_Segment]:
    segments = []
    for line in text.split("\r"):
        parts = line.split(d.field)
        name = parts[0].strip()
        if name == "MSH":  # MSH-1 is the field separator itself
            parts = [name, d.field, *parts[1:]]
        segments.append(_Segment(name, tuple(parts), d))
    return segments


# ---------------------------------------------------------------- MSH


def digest(raw: bytes) -> str:
    """SHA-256 of a message as a resend would repeat it: segment ends normalised, empty trailing
    fields, repetitions, components and subcomponents dropped (an engine re-encoding a message
    adds or drops them) and MSH-7 (date/time of message, which engines regenerate when they
    resend) left out."""
    text = normalise(decode(raw))
    try:
        d = _delims(text)
    except Hl7Error:
        return hashlib.sha256(text.encode()).hexdigest()
    lines = text.split("\r")
    fields = lines[0].split(d.field)
    if len(fields) > 6:
        fields[6] = ""  # MSH-7 (fields[0] is "MSH", MSH-1 is the separator itself)
    lines[0] = d.field.join(fields)
    return hashlib.sha256("\r".join(_trimmed(line, d, i == 0) for i, line in enumerate(lines)).encode()).hexdigest()


def _trimmed(line: str, d: _Delims, is_msh: bool) -> str:
    """A segment without the empty parts an engine may add or drop when it re-encodes it: trailing
    empty fields, repetitions, components and subcomponents, and spaces around values."""
    fields = line.split(d.field)
    head, rest = (fields[:2], fields[2:]) if is_msh else (fields[:1], fields[1:])  # MSH-2 as it is

    def trim(value: str, seps: str) -> str:
        if not seps:
            return value.strip()
        parts = [trim(part, seps[1:]) for part in value.split(seps[0])]
        while parts and not parts[-1]:
            parts.pop()
        return seps[0].join(parts)

    out = [*head, *(trim(f, d.repetition + d.component + d.subcomponent) for f in rest)]
    while len(out) > len(head) and not out[-1]:
        out.pop()
    return d.field.join(out)


def read_header(raw: bytes) -> MshHeader:
    """MSH only, for the ACK; raises Hl7Error(AE) when there is no usable MSH."""
    return _header(normalise(decode(raw)), _codec_for(raw))[0]


def _header(text: str, codec: str) -> tuple[MshHeader, _Delims, list[_Segment]]:
    d = dataclasses.replace(_delims(text), codec=codec)
    segments = _segments(text, d)
    msh = segments[0]
    header = MshHeader(
        separators=d.field + msh.raw(2),
        sending_application=msh.raw(3),
        sending_facility=msh.raw(4),
        receiving_application=msh.raw(5),
        receiving_facility=msh.raw(6),
        message_type=msh.get(9, 1),
        trigger=msh.get(9, 2),
        control_id="" if msh.raw(10).strip() == _NULL else msh.raw(10).strip(),
        processing_id=msh.raw(11),
        version=msh.raw(12),
        charset=msh.raw(18),
        encoding=codec,
    )
    return header, d, segments


# ---------------------------------------------------------------- values


def _period(value: str, local: tzinfo) -> tuple[datetime, datetime] | None:
    """The span a DTM names: (instant, instant) when it says the minute; else the year, month,
    day or hour it gives, as [start, end). None when unreadable."""
    start = _parse_ts(value, local)
    found = _TS.fullmatch(value.strip())
    if start is None or found is None:
        return None
    month, day, hour, minute = found.groups()[1:5]
    if minute is not None:
        return start, start
    if hour is not None:
        return start, start + timedelta(hours=1)
    if day is not None:
        return start, datetime.combine(start.date() + timedelta(days=1), start.timetz())
    if month is not None:
        return start, start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, start.replace(year=start.year + 1)


def _event_time(candidates: list[str], local: tzinfo, *, end_of_stay: bool) -> tuple[datetime, bool] | None:
    """(when the event happened, whether only its day — or a coarser span — is known), from the
    candidates best first (`_event_times`); None when none is readable.

    HL7 v2.5 §2.A.22 (DTM) lets a sender stop at the day (`20261129`) or the year. Such a time
    names a span, not its midnight: a discharge sent as PV1-45 = `20261129` after an admission at
    08:00 that day sorted before it, so the discharge read as late and the person stayed "in
    hospital". The span's start stands for an admission, transfer or update (it happened that
    day, before what followed it); for the end of a stay (a discharge) its upper bound does —
    the first exact time among the later candidates that falls within the span (the event was
    recorded, or the message made, no earlier than it happened), else the span's last second.
    Either way the notice shows only the day."""
    periods = [p for p in (_period(c, local) for c in candidates) if p is not None]
    if not periods:
        return None
    (start, end), later = periods[0], periods[1:]
    if start == end:
        return start, False
    if not end_of_stay:
        return start, True
    bound = next((s for s, e in later if s == e and start <= s < end), None)
    return (bound if bound is not None else end - timedelta(seconds=1)), True


def _parse_ts(value: str, local: tzinfo = _PARIS) -> datetime | None:
    """HL7 TS/DTM: YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]; no offset → Europe/Paris."""
    m = _TS.fullmatch(value.strip())
    if m is None:
        return None
    year, month, day, hour, minute, sec, frac, offset = m.groups()
    tz: tzinfo
    if offset:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            return None
        sign = -1 if offset[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    else:
        tz = local  # HL7 v2.5 §2.A.75 (DTM): no offset means the sender's local time
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(sec or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        return None


def _patient_ids(seg: _Segment, n: int) -> tuple[PatientId, ...]:
    ids = []
    for rep in seg.reps(n):
        value = _part(rep, seg.d, 1)
        if value:
            ids.append(
                PatientId(
                    value=value,
                    authority=_part(rep, seg.d, 4, 1),
                    authority_oid=_part(rep, seg.d, 4, 2),
                    type_code=_part(rep, seg.d, 5),
                )
            )
    return tuple(dict.fromkeys(ids))


def _gp_rpps(segments: list[_Segment]) -> str:
    """ROL-4 id of the médecin traitant (ROL-3 = ODRP), preferring an RPPS-typed repetition."""
    for rol in segments:
        if rol.name != "ROL" or rol.get(3) != "ODRP" or rol.get(2) == "DE":
            continue
        reps = rol.reps(4)
        for rep in reps:
            oid = _part(rep, rol.d, 9, 2)
            if _part(rep, rol.d, 13) == "RPPS" or oid == "1.2.250.1.71.4.2.1":
                return _part(rep, rol.d, 1)
        for rep in reps:
            if _part(rep, rol.d, 1):
                return _part(rep, rol.d, 1)
    return ""


def _first(segments: list[_Segment], name: str) -> _Segment | None:
    return next((seg for seg in segments if seg.name == name), None)


def _event_times(trigger: str, evn: _Segment, pv1: _Segment, zbe: _Segment, msh: _Segment) -> list[str]:
    """Where the time the event happened may be, best first.

    ZBE-2, the movement's own date/time (IHE PAM, France included: the time the movement history
    is kept by, and that a Z99 corrects): engines fill EVN-6 with when the movement was keyed in
    (the ANS PAM example: EVN-6 = EVN-2 = MSH-7 = 11:11:54, ZBE-2 = 11:00). Without ZBE, EVN-6
    (event occurred); PV1-44 for an admission, PV1-45 for a discharge; only then EVN-2, which is
    when the event was *recorded* (a discharge keyed in the next morning), and MSH-7, when the
    message was made.
    """
    stay = {"A01": 44, "A04": 44, "A03": 45}.get(trigger)
    return [_to_the_minute(zbe.get(2)), evn.get(6), *([pv1.get(stay)] if stay else []), evn.get(2), msh.get(7)]


def _to_the_minute(value: str) -> str:
    """A ZBE-2 that says the minute, or "": the movement's DTM ahead of a full EVN-6 only when it is
    one. A ZBE-2 cut to its date (`20240306`) or year put the admission at midnight or on 1
    January ahead of EVN-6's 11:11:54; an unreadable one was already passed over."""
    found = _TS.fullmatch(value.strip())
    return value if found is not None and found.group(5) is not None else ""


#: A death date further than this before the discharge is not this stay's end: test and demo
#: data (the HL7 GHH samples) carry PID-30 = Y with a death date years before the stay.
DEATH_BEFORE_DISCHARGE = timedelta(days=30)


def _died(pid: _Segment, event_time: datetime, tz: tzinfo) -> bool:
    """A discharge at the person's death: PID-30 (patient death indicator, HL7 table 0136) is Y,
    and PID-29 (death date/time) is absent or within the stay's last DEATH_BEFORE_DISCHARGE (up to
    a day after the discharge's time). Never told as a return home."""
    if pid.get(30).strip().upper() != "Y":
        return False
    died_at = _parse_ts(pid.get(29), tz)
    return died_at is None or event_time - DEATH_BEFORE_DISCHARGE <= died_at <= event_time + timedelta(days=1)


# PMSI "mode de destination" (ZFM-4) → the discharge-disposition words transitions.py knows.
_PMSI_DESTINATION = {"1": "hosp", "2": "rehab", "3": "long", "4": "psy", "6": "had", "7": "snf"}


def _is_french(segments: list[_Segment]) -> bool:
    """IHE PAM France (MSH-12 `2.5^FRA^2.x`, MSH-17 FRA, MSH-21 IHE_FRANCE…, or a ZFM segment)."""
    msh = segments[0]
    return (msh.get(12, 2).upper() == "FRA" or msh.get(17).upper() == "FRA"
            or any("IHE_FRANCE" in rep.upper() for rep in msh.reps(21)) or _first(segments, "ZFM") is not None)


def _disposition(segments: list[_Segment], pv1: _Segment, french: bool) -> str:
    """Where a discharge sends the person, as a disposition code (transitions.discharge_setting).

    In IHE PAM France PV1-36 holds the *circumstances* of the discharge (3 = medical decision,
    4 = against medical advice, 6 = personal convenience…), not table 0112's destinations,
    whose codes it reuses with other meanings: read as 0112, an ordinary medical discharge
    home ("3") became "to a nursing home". There, where the person goes is ZFM-2 (PMSI mode
    de sortie: 6 mutation, 7 transfer, 8 home, 9 death) and ZFM-4 (PMSI destination); without
    ZFM the destination is unknown ("").
    """
    if not french:
        return pv1.get(36)
    zfm = _first(segments, "ZFM")
    if zfm is None:
        return ""
    mode, destination = zfm.get(2), zfm.get(4)
    if mode == "9":
        return "exp"  # death: never a return home
    if destination in _PMSI_DESTINATION and (mode in ("7", "8", "6") or not mode):
        return _PMSI_DESTINATION[destination]
    return {"8": "home", "7": "hosp", "6": "hosp", "0": "oth"}.get(mode, "")


def _merges(segments: list[_Segment]) -> tuple[tuple[PatientId, ...], tuple[PatientId, ...],
                                                tuple[tuple[PatientId, PatientId], ...]]:
    """An A40 names one or more merges, each a PID (the surviving record) followed by its MRG
    (the record merged into it): (every PID-3 identifier, every MRG-1 identifier, and the
    (old, new) pairs of the same authority within each PID/MRG pair)."""
    survivors: list[PatientId] = []
    olds: list[PatientId] = []
    pairs: list[tuple[PatientId, PatientId]] = []
    current: tuple[PatientId, ...] = ()
    for seg in segments:
        if seg.name == "PID":
            current = _patient_ids(seg, 3)
            survivors.extend(current)
        elif seg.name == "MRG":
            for old in _patient_ids(seg, 1):
                olds.append(old)
                new = next((pid for pid in current
                            if (pid.authority, pid.authority_oid) == (old.authority, old.authority_oid)), None)
                if new is not None:
                    pairs.append((old, new))
    return tuple(dict.fromkeys(survivors)), tuple(dict.fromkeys(olds)), tuple(dict.fromkeys(pairs))


# ---------------------------------------------------------------- parse


def processing_id(header: MshHeader) -> str:
    """MSH-11.1, the processing ID (v2.5 §2.14.9.11, PT data type): `P^T` is production in current
    processing mode (MSH-11.2, table 0207). Absent (or `""`) reads as production, as HL7 v2.1
    senders that never filled it meant; case is ignored."""
    component = header.separators[1:2] or "^"
    value = header.processing_id.split(component, 1)[0].strip().upper()
    return "" if value == _NULL else value


#: MSH-11.2 processing modes (HL7 table 0207) whose messages are past events replayed: A archive,
#: R restore from archive. I (initial load: a census of current stays) and T (current) are acted on.
_REPLAYED_MODES = frozenset({"A", "R"})


def processing_mode(header: MshHeader) -> str:
    """MSH-11.2, the processing mode (table 0207), upper case; "" when absent (current processing)."""
    parts = header.processing_id.split(header.separators[1:2] or "^")
    return parts[1].strip().upper() if len(parts) > 1 else ""


def parse(raw: bytes, tz: tzinfo = _PARIS, *, processing_ids: frozenset[str] = PRODUCTION) -> Alert:
    """One ADT message → Alert; Hl7Error (AE/AR) or IsAck otherwise. `tz`: the territory's zone
    (`[care] timezone`), for times sent without an offset — a hospital in La Réunion sends its
    own local time, not Paris's. `processing_ids`: the MSH-11 processing IDs taken
    (`[alerts] processing_ids`); any other is refused AR 202, "unsupported processing id", as
    v2.5 §2.9.2.1 (original-mode validation of MSH-11) and table 0357 say, and nothing is kept."""
    codec = _codec_for(raw)
    text = normalise(raw.decode(codec))
    header, d, segments = _header(text, codec)
    ctl = header.control_id

    def fail(code: AckCode, reason: str, error_code: str, key: str) -> Hl7Error:
        return Hl7Error(code, reason, ctl, error_code=error_code, header=header, key=key)

    if header.message_type.upper() == "ACK" or (
        not header.message_type and _first(segments, "MSA") is not None
    ):
        raise IsAck(header)
    if not header.message_type:  # MSH-9 is required (v2.5 §2.14.9): an error, not an unsupported type
        raise fail("AE", "no message type (MSH-9)", "101", "no_message_type")
    if header.message_type.upper() != "ADT":
        raise fail("AR", "unsupported message type", "200", "unsupported_type")
    processing = processing_id(header) or "P"
    if processing not in processing_ids:
        named = f" {processing}" if processing in PROCESSING_IDS else ""  # never echo free text
        raise fail("AR", f"unsupported processing id{named} (MSH-11): this receiver takes "
                   + ", ".join(sorted(processing_ids)), "202", "unsupported_processing_id")
    version = _VERSION.fullmatch(segments[0].get(12))
    if version is None or not 3 <= int(version.group(1)) <= 8:
        raise fail("AR", "unsupported version", "203", "unsupported_version")
    evn = _first(segments, "EVN")
    trigger = (header.trigger or (evn.get(1) if evn else "")).upper()  # MSH-9.2 wins over EVN-1
    if not trigger:
        raise fail("AE", "no trigger event (MSH-9.2, EVN-1)", "101", "no_trigger")
    event = EVENTS.get(trigger)
    if event is None:
        if _TRIGGER.fullmatch(trigger):
            raise NotActed(header, trigger)
        raise fail("AE", "invalid trigger event", "103", "bad_trigger")
    if processing_mode(header) in _REPLAYED_MODES:
        # A past event replayed from an archive: telling the team now would announce an admission
        # or a discharge of years ago as news. Acknowledged, counted, not kept, like A28.
        raise NotActed(header, trigger)

    pid = _first(segments, "PID")
    if pid is None:
        raise fail("AE", "no PID segment", "100", "no_pid")
    identifiers = _patient_ids(pid, 3)
    if not identifiers:
        raise fail("AE", "no patient identifier in PID-3", "101", "no_identifier")
    merged: tuple[PatientId, ...] = ()
    merges: tuple[tuple[PatientId, PatientId], ...] = ()
    if event is AlertEvent.merge:
        identifiers, merged, merges = _merges(segments)
        if not merged:
            raise fail("AE", "no prior identifier in MRG-1", "101", "no_prior_identifier")

    msh = segments[0]
    empty = _Segment("", (), d)
    pv1 = _first(segments, "PV1") or empty
    zbe = _first(segments, "ZBE") or empty
    when = _event_time(_event_times(trigger, evn or empty, pv1, zbe, msh), tz,
                       end_of_stay=event is AlertEvent.discharge)
    if when is None:
        raise fail("AE", "no valid event time (ZBE-2, EVN-6, PV1-44/45, EVN-2, MSH-7)", "102", "no_event_time")
    event_time, day_only = when
    # Only what PV1-3 says is a location: MSH-4 names the sender, shown when PV1-3.4 is absent.
    facility = pv1.get(3, 4, 1) or pv1.get(3, 4, 2)
    # PAM France sends the medical unit (UF) in ZBE-7 and often leaves PV1-3.1 empty.
    unit = pv1.get(3, 1) or zbe.get(7, 1)
    transfer = event in _TRANSFERS
    return _unread_shown(Alert(
        source="hl7",
        sender=f"{msh.get(3, 1)}^{msh.get(4, 1)}",
        control_id=_unescape(ctl, d),
        event=event,
        trigger=trigger,
        event_time=event_time,
        day_only=day_only,
        identifiers=identifiers,
        facility=facility,
        sender_facility=msh.get(4, 1) or msh.get(4, 2),
        unit=unit,
        patient_class=pv1.get(2),
        discharge_disposition=("exp" if event is AlertEvent.discharge and _died(pid, event_time, tz)
                               else _disposition(segments, pv1, _is_french(segments))),
        discharge_destination=pv1.get(37),
        movement_id=zbe.get(1),
        movement_action=zbe.get(4).upper(),
        gp_rpps=_gp_rpps(segments),
        merged_identifiers=merged,
        merges=merges,
        prior_unit=pv1.get(6, 1) if transfer else "",
        prior_facility=(pv1.get(6, 4, 1) or pv1.get(6, 4, 2)) if transfer else "",
    ))


def _unread_shown(alert: Alert) -> Alert:
    """An escape that could not be decoded is shown as "?" and flagged (`Alert.unreadable`), so
    that the listener tells the operator: a unit or place never loses a part without a trace."""
    def clean(value: str) -> str:
        return value.replace(UNREAD, "?")

    changes: dict[str, Any] = {}
    for item in dataclasses.fields(alert):
        value = getattr(alert, item.name)
        if isinstance(value, str) and UNREAD in value:
            changes[item.name] = clean(value)
        elif item.name in ("identifiers", "merged_identifiers") and any(
                UNREAD in p.value + p.authority + p.authority_oid + p.type_code for p in value):
            changes[item.name] = tuple(PatientId(clean(p.value), clean(p.authority), clean(p.authority_oid),
                                                 clean(p.type_code)) for p in value)
    return dataclasses.replace(alert, **changes, unreadable=True) if changes else alert
