from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.alerts import Alert, AlertEvent, PatientId
from hub.domain.identity import matches
from hub.inbound.hl7v2 import Hl7Error, IsAck, NotActed, decode, digest, read_header
from tests.inbound.alert_stack import parse_on_test_hub as parse
from tests.samples_path import SAMPLES

PARIS = ZoneInfo("Europe/Paris")
INS_PAM = PatientId("279035121518989", "ASIP-SANTE-INS-NIR", "1.2.250.1.213.1.4.10", "INS")
PI_PAM = PatientId("000003", "CHU-X", "000897406", "PI")
GHH_IDS = (
    PatientId("PATID1234", "test1", "2.16.1", "MR"),
    PatientId("123456789", "USSSA", "", "SS"),
)
GHH_TIME = datetime(2021, 8, 17, 15, 19, 43, 400000, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture(scope="module")
def samples() -> Path:
    return SAMPLES


def sample(samples: Path, name: str) -> bytes:
    return (samples / "hl7v2" / name).read_bytes()


def with_cr(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r")


@pytest.mark.parametrize(
    ("name", "event", "trigger"),
    [
        ("ADT-A01-01.hl7", AlertEvent.admission, "A01"),
        ("ADT-A02-01.hl7", AlertEvent.transfer, "A02"),
        ("ADT-A03-01.hl7", AlertEvent.discharge, "A03"),
        ("ADT-A04-01.hl7", AlertEvent.admission, "A04"),
        ("ADT-A08-01.hl7", AlertEvent.update, "A08"),
        ("ADT-A11-01.hl7", AlertEvent.cancel_admission, "A11"),
        ("ADT-A13-01.hl7", AlertEvent.cancel_discharge, "A13"),
    ],
)
def test_ghh_samples(samples: Path, name: str, event: AlertEvent, trigger: str) -> None:
    # EVN-1 says A01 in every one of these: MSH-9 is trusted.
    alert = parse(sample(samples, name))
    assert (alert.event, alert.trigger) == (event, trigger)
    assert alert.source == "hl7"
    assert alert.sender == "ADTApp^GHHSFacility"
    assert alert.control_id == "MSG00001"
    assert alert.event_time == GHH_TIME  # EVN-6, with fractional seconds
    assert alert.identifiers == GHH_IDS  # PID-3 repetitions, `&` authority, not PID-2
    assert (alert.facility, alert.unit, alert.patient_class) == (
        "HOMERTON UNIVER",
        "HUH AE OMU",
        "P",
    )
    assert alert.gp_rpps == ""  # ROL there is PP (primary care provider), not ODRP
    assert alert.merged_identifiers == ()


def test_ghh_discharge_fields(samples: Path) -> None:
    alert = parse(sample(samples, "ADT-A03-01.hl7"))
    assert alert.discharge_disposition == "Admitted as Inpatient"
    assert alert.discharge_destination == "22"
    assert (alert.prior_unit, alert.prior_facility) == ("", "")


def test_transfer_keeps_prior_location(samples: Path) -> None:
    alert = parse(sample(samples, "ADT-A02-01.hl7"))
    assert alert.prior_unit == "4 East, room 136, bed B 4E"
    assert alert.prior_facility == "CommunityHospital"


def test_merge_sample(samples: Path) -> None:
    alert = parse(sample(samples, "ADT-A40-01.hl7"))
    assert alert.event is AlertEvent.merge
    assert alert.control_id == "8919-40"
    assert alert.identifiers == (PatientId("12345", "BCBS", "", "MR"),)
    assert alert.merged_identifiers == (PatientId("56789", "BCBS", "", "MR"),)
    assert alert.event_time == datetime(2019, 4, 23, 12, 46, 37, tzinfo=UTC)  # +0215
    # No PV1: no location (absent is never a change); MSH-4 names the sender, for display.
    assert alert.facility == "" and alert.sender_facility == "Ntierprise Clinic"


def test_pam_france_admission(samples: Path) -> None:
    alert = parse(sample(samples, "pam-fr-admission.er7"))
    assert alert.event is AlertEvent.admission
    assert alert.sender == "GAM^CHU-X"
    assert alert.control_id == "3975"
    assert alert.identifiers == (PI_PAM, INS_PAM)  # the INS comes under the *test* OID
    assert alert.event_time == datetime(2024, 3, 6, 11, 0, tzinfo=PARIS)  # ZBE-2, the movement
    assert alert.event_time.utcoffset() == timedelta(hours=1)
    assert (alert.movement_id, alert.movement_action) == ("001", "INSERT")
    assert (alert.facility, alert.patient_class) == ("CHU-X", "I")
    assert alert.unit == "Chir V"  # PV1-3.1 empty: ZBE-7 medical unit
    assert alert.gp_rpps == ""
    # the sample's INS is under the national *test* OID: matched only when configured
    assert not matches([("INS", INS_PAM.value)], alert.identifiers, ins_test_oids=False)
    assert matches([("INS", INS_PAM.value)], alert.identifiers, ins_test_oids=True)
    assert matches([("CHU-X", "000003")], alert.identifiers, ins_test_oids=False)
    header = read_header(sample(samples, "pam-fr-admission.er7"))
    assert (header.version, header.processing_id, header.charset) == (
        "2.5^FRA^2.11",
        "D",
        "UNICODE UTF-8",
    )


def test_alert_keeps_no_name_or_birth_date(samples: Path) -> None:
    text = repr(parse(sample(samples, "pam-fr-admission.er7")))
    for secret in ("PAT-TROIS", "DOMINIQUE", "19790328", "Breteuil"):
        assert secret not in text
    text = repr(parse(sample(samples, "ADT-A01-01.hl7")))
    for secret in ("EVERYMAN", "ADAM", "19880818", "Hospital Lane", "Stroke"):
        assert secret not in text


ODRP = (
    "ROL||AD|ODRP^Médecin traitant^IHE|"
    "12^X^Y~810002909371^MEDECIN^TRAITANT^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^L^^^RPPS"
)


def test_rol_odrp_gives_the_gp_rpps(samples: Path) -> None:
    raw = sample(samples, "pam-fr-admission.er7").replace(b"\nZBE", f"\n{ODRP}\nZBE".encode())
    assert parse(raw).gp_rpps == "810002909371"
    deleted = raw.replace(b"ROL||AD|", b"ROL||DE|")
    assert parse(deleted).gp_rpps == ""


@pytest.mark.parametrize("name", sorted(p.name for p in (SAMPLES / "hl7v2").iterdir()))
def test_line_endings_do_not_matter(samples: Path, name: str) -> None:
    lf = sample(samples, name)
    cr = with_cr(lf)
    crlf = cr.replace(b"\r", b"\r\n")
    alerts = [parse(v) for v in (lf, cr, crlf, crlf + b"\r\n\r\n", b"\n" + lf)]
    assert all(a == alerts[0] for a in alerts)


def _latin1(raw_utf8: bytes) -> bytes:
    text = raw_utf8.decode("utf-8").replace("|UNICODE UTF-8|", "|8859/1|")
    return text.encode("latin-1")


def test_iso_8859_1_variant_equals_utf8(samples: Path) -> None:
    utf8 = sample(samples, "pam-fr-admission.er7")
    assert parse(_latin1(utf8)) == parse(utf8)
    accented = utf8.decode().replace("Chir V", "Chirurgie générale").encode("utf-8")
    iso = _latin1(accented)
    assert b"g\xe9n\xe9rale" in iso
    assert parse(iso) == parse(accented)
    assert parse(iso).unit == "Chirurgie générale"
    assert read_header(iso).encoding == "latin-1"


def test_decode_charset_fallbacks() -> None:
    msh = "MSH|^~\\&|A|B|C|D|20240306||ADT^A01|1|P|2.5|||||FRA|{}|\rPID|||é"
    assert decode(msh.format("UNICODE UTF-8").encode("utf-8")).endswith("é")
    assert decode(msh.format("8859/1").encode("latin-1")).endswith("é")
    assert decode(msh.format("").encode("utf-8")).endswith("é")  # undeclared: UTF-8
    assert decode(msh.format("").encode("latin-1")).endswith("é")  # not UTF-8: Latin-1
    assert decode(msh.format("UNICODE UTF-8").encode("latin-1")).endswith("é")  # lying MSH-18
    assert decode(msh.format("ASCII").encode("latin-1")).endswith("é")


def test_escapes_are_unescaped_in_kept_values(samples: Path) -> None:
    raw = with_cr(sample(samples, "ADT-A40-01.hl7"))
    raw = raw.replace(b"12345^^^BCBS", rb"12\E\345^^^B\T\C\X42\\S\\H\bold\N\\.br\x").replace(
        b"MRG|56789^^^BCBS", rb"MRG|56789^^^BC\F\BS\Zunknown\~5\^^^X\T"
    )
    alert = parse(raw)
    assert alert.identifiers == (PatientId("12\\345", "B&CB^bold x", "", "MR"),)
    assert alert.merged_identifiers == (
        PatientId("56789", "BC|BS?", "", ""),  # \Zxx\ (locally defined) cannot be read: shown as "?"
        PatientId("5\\", "X\\T", "", "MR"),  # unterminated escapes are kept as they are
    )
    assert alert.unreadable


def _pam(samples: Path) -> str:
    return with_cr(sample(samples, "pam-fr-admission.er7")).decode()


def _error(raw: bytes | str) -> Hl7Error:
    with pytest.raises(Hl7Error) as info:
        parse(raw.encode() if isinstance(raw, str) else raw)
    return info.value


@pytest.mark.parametrize(
    ("mutate", "code", "error_code"),
    [
        (lambda t: t.replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01"), "AR", "200"),
        (lambda t: t.replace("ADT^A01^ADT_A01", "ADT^1-2"), "AE", "103"),  # not a trigger event code
        (lambda t: t.replace("ADT^A01^ADT_A01", "ADT^A1^ADT_A01"), "AE", "103"),
        (lambda t: t.replace("|2.5^FRA^2.11|", "|2.2|"), "AR", "203"),
        (lambda t: t.replace("|2.5^FRA^2.11|", "|2.9|"), "AR", "203"),
        (lambda t: t.replace("|2.5^FRA^2.11|", "||"), "AR", "203"),
        (lambda t: "\r".join(s for s in t.split("\r") if not s.startswith("PID")), "AE", "100"),
        (lambda t: t.replace(t[t.index("PID|") : t.index("||PAT-TROIS")], "PID|1||"), "AE", "101"),
        (
            lambda t: t.replace("|20240306111154|", "|notadate|").replace("20240306111154", "x")
            .replace("20240306110000", "x"),  # ZBE-2 too
            "AE",
            "102",
        ),
    ],
)
def test_specified_errors(samples: Path, mutate: object, code: str, error_code: str) -> None:
    assert callable(mutate)
    err = _error(mutate(_pam(samples)))
    assert (err.code, err.error_code, err.control_id) == (code, error_code, "3975")
    assert err.header is not None and err.header.sending_application == "GAM"


def test_versions_2_3_to_2_8_accepted(samples: Path) -> None:
    for version in ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.2"):
        raw = _pam(samples).replace("|2.5^FRA^2.11|", f"|{version}|")
        assert parse(raw.encode()).event is AlertEvent.admission


def test_trigger_from_msh9_else_evn1(samples: Path) -> None:
    pam = _pam(samples)
    assert parse(pam.replace("ADT^A01^ADT_A01", "ADT^A03").encode()).event is AlertEvent.discharge
    no_msh_trigger = pam.replace("ADT^A01^ADT_A01", "ADT").replace("EVN||", "EVN|A21|")
    assert parse(no_msh_trigger.encode()).event is AlertEvent.leave


def test_event_time_falls_back_to_evn2_then_msh7(samples: Path) -> None:
    with_zbe = _pam(samples)
    no_evn_6 = with_zbe.replace("EVN||20240306111154||||20240306111154", "EVN||20240306111154||||")
    assert parse(no_evn_6.encode()).event_time == datetime(2024, 3, 6, 11, 0, tzinfo=PARIS)  # ZBE-2: the movement
    pam = "\r".join(s for s in with_zbe.split("\r") if not s.startswith("ZBE"))
    evn2 = pam.replace("EVN||20240306111154||||20240306111154", "EVN||202403061000+0000||||")
    assert parse(evn2.encode()).event_time == datetime(2024, 3, 6, 10, 0, tzinfo=UTC)
    msh7 = pam.replace("EVN||20240306111154||||20240306111154", "EVN||||||")
    assert parse(msh7.encode()).event_time == datetime(2024, 3, 6, 11, 11, 54, tzinfo=PARIS)
    no_evn = "\r".join(s for s in pam.split("\r") if not s.startswith("EVN"))
    assert parse(no_evn.encode()).event_time == datetime(2024, 3, 6, 11, 11, 54, tzinfo=PARIS)


def test_merge_without_mrg_is_ae(samples: Path) -> None:
    raw = with_cr(sample(samples, "ADT-A40-01.hl7")).split(b"\rMRG")[0]
    assert _error(raw).error_code == "101"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n",
        b"hello",
        b"PID|1||42",
        b"MSH",
        b"MSH|",
        b"MSH||||",
        b"MSH|^^~\\&|A",
        b"MSHa^~\\&|",
    ],
)
def test_no_usable_msh_is_ae_without_header(raw: bytes) -> None:
    err = _error(raw)
    assert (err.code, err.control_id, err.header) == ("AE", "", None)


def test_an_ack_is_never_acknowledged() -> None:
    ack = b"MSH|^~\\&|DPI|CHU-X|GAM|CHU-X|20240306111155||ACK^A01^ACK|9|P|2.5\rMSA|AA|3975\r"
    with pytest.raises(IsAck) as info:
        parse(ack)
    assert info.value.header.control_id == "9"
    with pytest.raises(IsAck):
        parse(b"MSH|^~\\&|DPI|CHU-X|GAM|CHU-X|20240306111155||ACK|9|P|2.9\rMSA|AE|1\r")


def test_custom_separators(samples: Path) -> None:
    pam = _pam(samples)
    table = str.maketrans("|^&", "#!$")
    alert = parse(pam.translate(table).encode())
    assert alert == parse(pam.encode())


def test_alert_requires_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Alert("hl7", "a", "1", AlertEvent.update, "A08", datetime(2024, 1, 1), ())


hl7ish = st.text(alphabet=st.sampled_from("MSHPIDEVN|^~\\&\r\n0123AX.+-é "), max_size=200)


def _survives(raw: bytes) -> None:
    try:
        alert = parse(raw)
    except (Hl7Error, IsAck):
        return
    assert alert.identifiers and alert.event_time.tzinfo is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parse_only_raises_hl7_errors_on_any_text(text: str) -> None:
    _survives(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None)
@given(hl7ish, st.sampled_from(["2.5", "2.8", "2.3.1", "", "2.5^FRA^2.11"]))
def test_parse_only_raises_hl7_errors_on_hl7_like_text(tail: str, version: str) -> None:
    head = f"MSH|^~\\&|A|B|C|D|20240306||ADT^A01|1|P|{version}\rPID|1||"
    _survives((head + tail).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parse_only_raises_hl7_errors_on_any_bytes(raw: bytes) -> None:
    _survives(b"MSH" + raw)


# ---------------------------------------------------------------- issue 15: feeds as engines send them

MESSAGES = Path(__file__).parent / "messages"


def _msg(name: str) -> bytes:
    return (MESSAGES / name).read_bytes().replace(b"\n", b"\r")


def test_explicit_null_is_no_value_anywhere() -> None:
    alert = parse(_msg("a01-null-location.hl7"))
    assert (alert.facility, alert.unit, alert.patient_class) == ("", "", "I")
    assert alert.sender_facility == "CHU-X"
    nulls = _msg("a01-geria.hl7").replace(b"PID|1||910031^^^CHU-X^PI", b'PID|1||""~910031^^^""&1.2.3&ISO^""')
    assert parse(nulls).identifiers == (PatientId("910031", "", "1.2.3", ""),)
    assert parse(_msg("a01-geria.hl7").replace(b"|L-1|", b'|""|')).control_id == ""


def test_absent_location_is_not_taken_from_msh_4() -> None:
    alert = parse(_msg("a08-no-location.hl7"))
    assert (alert.facility, alert.unit, alert.sender_facility) == ("", "", "CHU-X")


@pytest.mark.parametrize("trigger", ["A28", "A31", "A47", "A60", "Z80", "a14"])
def test_adt_events_not_acted_on_are_told_apart(trigger: str) -> None:
    with pytest.raises(NotActed) as caught:
        parse(_msg("a28-add-person.hl7").replace(b"A28", trigger.encode()))
    assert caught.value.trigger == trigger.upper() and caught.value.header.control_id == "U-28"


def test_z99_is_an_update_of_the_movement_it_names() -> None:
    alert = parse(_msg("pam-z99-same-movement-new-unit.hl7"))
    assert (alert.event, alert.trigger, alert.movement_id, alert.unit, alert.facility) == (
        AlertEvent.update, "Z99", "MVT-1", "CARDIO", "CHU-Y")


def test_a_resend_has_the_same_digest_whatever_its_msh_7_and_line_ends() -> None:
    raw = _msg("a01-geria.hl7")
    resent = raw.replace(b"|20261127214228||ADT", b"|20261128063000||ADT").replace(b"\r", b"\r\n")
    assert digest(resent) == digest(raw)
    assert digest(raw.replace(b"GERIA^12^1^CHU-X", b"GERIA^12^1^CHU-X^^|||")) == digest(raw)  # empty trailing fields
    assert digest(raw.replace(b"GERIA", b"CARDIO")) != digest(raw)


def test_a_re_encoded_resend_has_the_same_digest_and_news_does_not() -> None:
    raw = _msg("a01-geria.hl7")
    # Empty trailing components, subcomponents and repetitions inside fields, and spaces.
    for variant in (raw.replace(b"GERIA^12^1^CHU-X", b"GERIA^12^1^CHU-X^^&|"),
                    raw.replace(b"910031^^^CHU-X^PI", b"910031^^^CHU-X^PI^~~"),
                    raw.replace(b"ADT^A01^ADT_A01", b"ADT^A01^ADT_A01^")):
        assert digest(variant) == digest(raw), variant
    # A value, an inner empty component or a repetition order is content.
    for news in (raw.replace(b"GERIA^12^1^CHU-X", b"GERIA^12^^1^CHU-X"),
                 raw.replace(b"910031^^^CHU-X^PI", b"~910031^^^CHU-X^PI")):
        assert digest(news) != digest(raw), news


def test_a_hex_escaped_control_character_never_reaches_a_value() -> None:
    raw = _msg("a01-geria.hl7").replace(b"GERIA^12", b"GERIA\\X0D0A\\B^12")
    assert parse(raw).unit == "GERIA  B"


def test_a_time_without_an_offset_is_the_territorys_local_time(samples: Path) -> None:
    # The PAM sample's movement time (ZBE-2) has no offset: 11:00 where the hospital is.
    raw = sample(samples, "pam-fr-admission.er7")
    reunion = ZoneInfo("Indian/Reunion")
    assert parse(raw).event_time == datetime(2024, 3, 6, 10, 0, tzinfo=UTC)  # Paris, the default
    assert parse(raw, tz=reunion).event_time == datetime(2024, 3, 6, 7, 0, tzinfo=UTC)
    # An explicit offset wins over the territory's zone.
    explicit = parse(sample(samples, "ADT-A01-01.hl7"), tz=reunion).event_time
    assert explicit == parse(sample(samples, "ADT-A01-01.hl7")).event_time
