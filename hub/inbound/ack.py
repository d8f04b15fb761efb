"""HL7 v2 acknowledgements (original mode), pure: header in, bytes out (not MLLP-framed)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from hub.inbound.hl7v2 import MshHeader

__all__ = ["ERROR_TEXTS", "build_ack", "build_batch", "escape"]

AckCode = Literal["AA", "AE", "AR"]

# HL7 table 0357, the codes this hub sends.
ERROR_TEXTS = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
_NEUTRAL_VERSION = "2.5"
_VERSION = re.compile(r"2\.(\d+)")


def escape(text: str, separators: str = "|^~\\&") -> str:
    """Escape free text for a field (HL7 2.10): separators become \\F\\ \\S\\ \\R\\ \\T\\."""
    fs, comp, rep, esc, sub = _split_separators(separators)
    if not esc:
        return "".join(ch for ch in text if ch not in {fs, comp, rep, sub})
    table = {esc: "E", fs: "F", comp: "S", rep: "R", sub: "T"}
    out = "".join(f"{esc}{table[ch]}{esc}" if ch in table else ch for ch in text)
    return " ".join(out.split())  # no segment breaks or control characters in a field


def _split_separators(seps: str) -> tuple[str, str, str, str, str]:
    """MSH-1 + MSH-2 → field, component, repetition, escape ("" if none), subcomponent."""

    def at(i: int, default: str) -> str:
        return seps[i] if len(seps) > i else default

    return at(0, "|"), at(1, "^"), at(2, "~"), at(3, ""), at(4, "&")


def _ts(now: datetime) -> str:
    stamp = now.strftime("%Y%m%d%H%M%S")
    offset = now.strftime("%z")
    return stamp + offset


def build_ack(
    header: MshHeader | None,
    code: AckCode,
    text: str = "",
    error_code: str = "",
    *,
    control_id: str,
    now: datetime,
    application: str = "RELAIS",
) -> bytes:
    """The ACK for an inbound message, or for a frame without a readable MSH (`header=None`).

    Sender and receiver are swapped, version, processing id and charset echoed, MSA-2 is the
    inbound MSH-10 (empty without MSH). AE/AR carry an ERR segment: ERR-3 the table 0357 code
    (207 when none given), ERR-4 severity E, ERR-8 the text. `control_id` and `now` come
    from the caller, which owns the id sequence and the clock.
    """
    if header is None:
        seps = "|^~\\&"
        sending_app, sending_fac = application, ""
        receiving_app, receiving_fac = "", ""
        trigger, inbound_id, processing, version, charset = "", "", "P", _NEUTRAL_VERSION, ""
        encoding = "utf-8"
    else:
        seps = header.separators
        sending_app = header.receiving_application or application
        sending_fac = header.receiving_facility
        receiving_app, receiving_fac = header.sending_application, header.sending_facility
        trigger, inbound_id = header.trigger, header.control_id
        processing = header.processing_id or "P"
        version = header.version or _NEUTRAL_VERSION
        charset, encoding = header.charset, header.encoding
    fs, comp = _split_separators(seps)[:2]
    message_type = comp.join(["ACK", escape(trigger, seps), "ACK"]) if trigger else "ACK"
    msh = [
        "MSH",
        seps[1:],
        sending_app,
        sending_fac,
        receiving_app,
        receiving_fac,
        _ts(now),
        "",
        message_type,
        escape(control_id, seps),
        processing,
        version,
    ]
    if charset:
        msh += [""] * 5 + [charset]
    segments = [fs.join(msh), fs.join(["MSA", code, inbound_id, escape(text, seps)])]
    if code != "AA":
        err_code = error_code or "207"
        cwe = comp.join([err_code, ERROR_TEXTS.get(err_code, ""), "HL70357"])
        segments.append(_err(cwe, text, version, seps))
    return ("\r".join(segments) + "\r").encode(encoding, errors="replace")


def _err(cwe: str, text: str, version: str, seps: str) -> str:
    fs, comp, _, _, sub = _split_separators(seps)
    minor = _VERSION.match(version.split(comp)[0])
    if minor is not None and int(minor.group(1)) < 5:
        # v2.3/2.4 only know ERR-1 (ELD): segment^sequence^field^code, code as CE subcomponents
        return fs.join(["ERR", comp * 3 + cwe.replace(comp, sub)])
    return fs.join(["ERR", "", "", cwe, "E", "", "", "", escape(text, seps)])


def _header_fields(line: bytes) -> tuple[str, list[str]]:
    """(separators, fields) of an FHS or BHS line; fields[n] is field n, as in MSH."""
    text = line.decode("latin-1")
    if len(text) < 4:
        return "|^~\\&", [text]
    fs = text[3]
    parts = text.split(fs)
    return fs + (parts[1] if len(parts) > 1 else "^~\\&"), [parts[0], fs, *parts[1:]]


def _batch_header(name: str, line: bytes, *, control_id: str, now: datetime, application: str) -> str:
    seps, fields = _header_fields(line)

    def at(n: int) -> str:
        return fields[n] if len(fields) > n else ""

    # Sender and receiver swapped; field 11 our control id, field 12 the batch/file we answer.
    out = [name, seps[1:], at(5) or application, at(6), at(3), at(4), _ts(now), "", "", "",
           escape(control_id, seps), at(11)]
    return seps[0].join(out)


def build_batch(fhs: bytes, batches: list[tuple[bytes, list[bytes]]], *, control_id: str, now: datetime,
                application: str = "RELAIS") -> bytes:
    """The answer to an HL7 batch (v2.5 §2.10.3): for each inbound batch, a batch holding one
    ACK per message, in order.

    `[FHS] {BHS {ACK} BTS} [FTS]`, FHS only when the inbound file had one. BHS-12 / FHS-12 quote
    the inbound BHS-11 / FHS-11 (a batch without BHS takes the FHS's); BTS-1 counts the ACKs,
    FTS-1 the batches. `batches` is (inbound BHS line or b"", ACKs). The ACKs keep their own
    encoding; the batch segments are ASCII.
    """
    out = []
    if fhs:
        out.append(_lines([_batch_header("FHS", fhs, control_id=control_id, now=now, application=application)]))
    for n, (bhs, acks) in enumerate(batches, start=1):
        source = bhs or fhs
        fs = _header_fields(source)[0][0]
        head = _batch_header("BHS", source, control_id=f"{control_id}-{n}", now=now, application=application)
        out += [_lines([head]), *acks, _lines([fs.join(["BTS", str(len(acks))])])]
    if fhs:
        out.append(_lines([_header_fields(fhs)[0][0].join(["FTS", str(len(batches))])]))
    return b"".join(out)


def _lines(segments: list[str]) -> bytes:
    return ("\r".join(segments) + "\r").encode("ascii", "replace")
