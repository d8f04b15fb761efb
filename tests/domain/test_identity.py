from __future__ import annotations

import pytest

from hub.domain.alerts import matches as matches_from_alerts
from hub.domain.identity import (
    INS_NIA_OID,
    INS_NIA_TEST_OID,
    INS_NIR_OID,
    INS_NIR_TEST_OID,
    PatientId,
    matches,
)

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
