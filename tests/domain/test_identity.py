from __future__ import annotations

import pytest

from hub.domain.alerts import matches as matches_from_alerts
from hub.domain.errors import DomainError
from hub.domain.identity import (
    INS_NIA_OID,
    INS_NIA_TEST_OID,
    INS_NIR_OID,
    INS_NIR_TEST_OID,
    PatientId,
    authority_key,
    matches,
    spellings,
)
from hub.domain.persons import check_new_identifiers, parse_identifier

NIR = "279035121518989"
LOCAL = PatientId("000003", "CHU-X", "1.2.250.1.71.4.2.2", "PI")


def ins(oid: str) -> PatientId:
    return PatientId(NIR, "ASIP-SANTE-INS-NIR", oid, "INS")


@pytest.mark.parametrize("authority", ["CHU-X", "1.2.250.1.71.4.2.2", "urn:oid:1.2.250.1.71.4.2.2"])
def test_local_id_by_namespace_or_oid(authority: str) -> None:
    assert matches([(authority, "000003")], [LOCAL], ins_test_oids=False)


def test_value_and_authority_must_both_agree() -> None:
    assert not matches([("CHU-X", "000004")], [LOCAL], ins_test_oids=False)
    assert not matches([("CHU-Y", "000003")], [LOCAL], ins_test_oids=False)
    assert not matches(
        [("PI", "000003")], [LOCAL], ins_test_oids=False
    )  # type code is no authority
    assert not matches([("", "000003")], [PatientId("000003", "", "", "")], ins_test_oids=False)
    assert not matches([("CHU-X", "")], [PatientId("", "CHU-X", "", "")], ins_test_oids=False)


@pytest.mark.parametrize("oid", [INS_NIR_OID, INS_NIA_OID])
def test_ins_matches_the_national_oids(oid: str) -> None:
    assert matches([("INS", NIR)], [LOCAL, ins(oid)], ins_test_oids=False)
    assert matches([("ins", NIR)], [ins(oid)], ins_test_oids=False)


@pytest.mark.parametrize("oid", [INS_NIR_TEST_OID, INS_NIA_TEST_OID])
def test_ins_test_oids_only_when_configured(oid: str) -> None:
    assert not matches([("INS", NIR)], [ins(oid)], ins_test_oids=False)
    assert matches([("INS", NIR)], [ins(oid)], ins_test_oids=True)
    # spelling the test OID out does not get round the setting
    assert not matches([(oid, NIR)], [ins(oid)], ins_test_oids=False)


def test_ins_needs_the_oid_not_the_label() -> None:
    unqualified = PatientId(NIR, "ASIP-SANTE-INS-NIR", "", "INS")
    assert not matches([("INS", NIR)], [unqualified], ins_test_oids=True)
    other = PatientId(NIR, "X", "1.2.3", "INS")
    assert not matches([("INS", NIR)], [other], ins_test_oids=True)


def test_any_person_id_may_match() -> None:
    person = [("CHU-Y", "1"), ("INS", NIR)]
    assert matches(person, iter([ins(INS_NIR_OID)]), ins_test_oids=False)
    assert not matches([], [ins(INS_NIR_OID)], ins_test_oids=False)
    assert not matches(person, [], ins_test_oids=False)


def test_re_exported_from_alerts() -> None:
    assert matches_from_alerts is matches


# ---------------------------------------------------------------- authority syntax (SPEC §4)

OID_ID = PatientId("F8001", "", "1.2.250.1.999.4.4", "PI")  # PID-3.4 = &1.2.250.1.999.4.4&ISO


@pytest.mark.parametrize("text", [
    "urn:oid:1.2.250.1.999.4.4:F8001", "1.2.250.1.999.4.4:F8001", "URN:OID:1.2.250.1.999.4.4:F8001",
    " urn:oid:1.2.250.1.999.4.4:F8001 ",
])
def test_the_authority_is_everything_before_the_last_colon_and_forms_of_one_oid_match(text: str) -> None:
    ident = parse_identifier(text)
    assert ident.value == "F8001" and authority_key(ident.authority) == "oid:1.2.250.1.999.4.4"
    assert matches([(ident.authority, ident.value)], [OID_ID], ins_test_oids=False)
    # A FHIR identifier with system urn:oid:… (fhir_notify keeps the bare OID) matches too.
    assert matches([(ident.authority, ident.value)], [PatientId("F8001", "urn:oid:1.2.250.1.999.4.4")],
                   ins_test_oids=False)


def test_a_url_authority_matches_the_fhir_system_and_a_namespace_ignores_case() -> None:
    ident = parse_identifier("https://chu-x.example.fr/patients:F8002")
    assert (ident.authority, ident.value) == ("https://chu-x.example.fr/patients", "F8002")
    fhir = PatientId("F8002", "HTTPS://CHU-X.example.fr/patients/")
    assert matches([(ident.authority, ident.value)], [fhir], ins_test_oids=False)
    assert not matches([(ident.authority, ident.value)], [PatientId("F8002", "https://other.example.fr/patients")],
                       ins_test_oids=False)
    assert matches([("chu-x", "000003")], [LOCAL], ins_test_oids=False)
    # A FINESS number is a namespace, not a broken OID.
    assert parse_identifier("750712184:42").authority == "750712184"


@pytest.mark.parametrize("text", [
    "urn:oid:1.2.250..4:F8001",  # not an OID
    "1.2.250.1.:F8001",
    "urn:oid::F8001",
    "urn:isbn:123:F8001",  # another URN: no message carries it as an authority
    "oid:1.2.3:F8001",
    "http:F8001",
    "https://:F8001",
    "CHU X:F8001",  # spaces are no namespace id
    "CHU-X:",
    "CHU-X:F 8001",
    "CHU-X:F^8001",  # an HL7 separator in the value
    ":F8001",
    "F8001",
    "CHU-X:" + "9" * 65,
])
def test_an_identifier_no_message_could_match_is_refused(text: str) -> None:
    with pytest.raises(DomainError) as refused:
        parse_identifier(text)
    assert refused.value.key == "error.identifier_format"


def test_one_identifier_in_two_spellings_is_a_duplicate() -> None:
    first = parse_identifier("urn:oid:1.2.250.1.999.4.4:F8001")
    with pytest.raises(DomainError) as refused:
        check_new_identifiers((first,), (parse_identifier("1.2.250.1.999.4.4:F8001"),))
    assert refused.value.key == "error.identifier_duplicate"
    assert spellings(first.authority) == ("1.2.250.1.999.4.4", "urn:oid:1.2.250.1.999.4.4")
