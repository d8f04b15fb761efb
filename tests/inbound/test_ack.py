from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.inbound.ack import build_ack, escape
from hub.inbound.hl7v2 import IsAck, MshHeader, parse, read_header
from tests.samples_path import SAMPLES

NOW = datetime(2024, 3, 6, 11, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def pam(samples: Path) -> MshHeader:
    return read_header((samples / "hl7v2" / "pam-fr-admission.er7").read_bytes())


def segments(ack: bytes, encoding: str = "utf-8") -> dict[str, list[str]]:
    assert ack.endswith(b"\r") and b"\n" not in ack
    return {s[:3]: s.split("|") for s in ack.decode(encoding).split("\r") if s}


def test_aa_swaps_sender_and_receiver_and_echoes_the_header(pam: MshHeader) -> None:
    seg = segments(build_ack(pam, "AA", control_id="ACK1", now=NOW))
    msh = seg["MSH"]  # msh[n] is MSH-(n+1)
    assert msh[1] == "^~\\&"
    assert msh[2:6] == ["DPI", "CHU-X", "GAM", "CHU-X"]
    assert msh[6] == "20240306111200+0000"
    assert msh[8] == "ACK^A01^ACK"
    assert (msh[9], msh[10], msh[11]) == ("ACK1", "D", "2.5^FRA^2.11")
    assert msh[17] == "UNICODE UTF-8"
    assert seg["MSA"][:3] == ["MSA", "AA", "3975"]
    assert "ERR" not in seg


def test_an_ack_we_build_is_recognised_as_an_ack(pam: MshHeader) -> None:
    with pytest.raises(IsAck):
        parse(build_ack(pam, "AA", control_id="ACK1", now=NOW))


def test_ae_carries_err_with_table_0357_code_severity_and_text(pam: MshHeader) -> None:
    seg = segments(build_ack(pam, "AE", "PID-3 | empty", "101", control_id="A2", now=NOW))
    assert seg["MSA"] == ["MSA", "AE", "3975", "PID-3 \\F\\ empty"]
    err = seg["ERR"]
    assert err[3] == "101^Required field missing^HL70357"
    assert err[4] == "E"
    assert err[8] == "PID-3 \\F\\ empty"


def test_ar_defaults_to_application_error(pam: MshHeader) -> None:
    seg = segments(build_ack(pam, "AR", "store unavailable", control_id="A3", now=NOW))
    assert seg["MSA"][1] == "AR"
    assert seg["ERR"][3].startswith("207^")


def test_ack_for_a_frame_without_msh_is_neutral() -> None:
    seg = segments(build_ack(None, "AE", "no MSH segment", "100", control_id="A4", now=NOW))
    assert seg["MSH"][2] == "RELAIS"
    assert seg["MSH"][8] == "ACK"
    assert seg["MSH"][11] == "2.5"
    assert seg["MSA"][:3] == ["MSA", "AE", ""]
    assert seg["ERR"][3].startswith("100^")


def test_ack_is_encoded_in_the_inbound_charset(samples: Path) -> None:
    text = (samples / "hl7v2" / "pam-fr-admission.er7").read_text("utf-8")
    iso = text.replace("|UNICODE UTF-8|", "|8859/1|").replace("|DPI|", "|DPI-Hôpital|")
    header = read_header(iso.encode("latin-1"))
    ack = build_ack(header, "AE", "unité inconnue", control_id="A5", now=NOW)
    assert "DPI-Hôpital".encode("latin-1") in ack
    assert "unité".encode("latin-1") in ack
    assert segments(ack, "latin-1")["MSH"][17] == "8859/1"


def test_old_versions_get_err_1(pam: MshHeader) -> None:
    from dataclasses import replace

    old = replace(pam, version="2.3.1", charset="")
    seg = segments(build_ack(old, "AR", "x", "201", control_id="A6", now=NOW))
    assert seg["ERR"] == ["ERR", "^^^201&Unsupported event code&HL70357"]
    assert len(seg["MSH"]) == 12


def test_custom_separators_are_kept(samples: Path) -> None:
    text = (samples / "hl7v2" / "pam-fr-admission.er7").read_text("utf-8")
    header = read_header(text.translate(str.maketrans("|^", "#!")).encode())
    ack = build_ack(header, "AE", "a#b!c", control_id="A7", now=NOW).decode()
    assert ack.startswith("MSH#!~\\&#DPI#CHU-X#GAM#CHU-X#")
    assert "ACK!A01!ACK" in ack
    assert "a\\F\\b\\S\\c" in ack


def test_escape() -> None:
    assert escape("a|b^c~d\\e&f") == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f"
    assert escape("line\rbreak\n end") == "line break end"
