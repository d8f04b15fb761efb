from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from hub.domain.alerts import AlertEvent, PatientId
from hub.inbound.fhir_notify import FhirError, operation_outcome, parse_bundle
from tests.samples_path import SAMPLES

PDT = timezone(timedelta(hours=-7))


@pytest.fixture(scope="module")
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def admit(samples: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (samples / "fhir" / "admit-notification-message-bundle-01.json").read_bytes()
    )
    return data


def entry(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind
    )
    return found


def error(body: bytes | dict[str, Any]) -> FhirError:
    with pytest.raises(FhirError) as info:
        parse_bundle(body)
    return info.value


IDS = (
    PatientId("06e1f0dd-5fbe-4480-9bb4-6b54ec02d31b", "http://example.org/fhir/pid", "", ""),
    PatientId("06e1f0dd-5fbe-4480-9bb4-6b54ec02d31b", "http://example.org/fhir/mrn", "", "MR"),
    PatientId("999-87-1037", "http://hl7.org/fhir/sid/us-ssn", "", "SS"),
    PatientId("S99952689", "", "2.16.840.1.113883.4.3.25", "DL"),  # urn:oid: system
)


def test_admit_sample(samples: Path) -> None:
    alert = parse_bundle(
        (samples / "fhir" / "admit-notification-message-bundle-01.json").read_bytes()
    )
    assert (alert.source, alert.event, alert.trigger) == (
        "fhir",
        AlertEvent.admission,
        "notification-admit",
    )
    assert alert.sender == "https://example.org/Endpoints/P456"
    assert alert.control_id == "admit-notification-message-bundle-01"
    assert alert.event_time == datetime(2018, 10, 21, 21, 22, 15, tzinfo=PDT)  # period.start
    assert alert.identifiers == IDS
    assert (alert.facility, alert.unit, alert.patient_class) == ("HOLY FAMILY HOSPITAL", "", "EMER")
    assert "Halvorson" not in repr(alert)


def test_discharge_sample(samples: Path) -> None:
    alert = parse_bundle(
        (samples / "fhir" / "discharge-notification-message-bundle-01.json").read_bytes()
    )
    assert alert.event is AlertEvent.discharge
    assert alert.event_time == datetime(2018, 10, 23, 22, 22, 15, tzinfo=PDT)  # period.end
    assert alert.identifiers == IDS
    assert (alert.patient_class, alert.discharge_disposition) == ("IMP", "1")


def test_dict_body_and_bytes_body_agree(admit: dict[str, Any]) -> None:
    assert parse_bundle(admit) == parse_bundle(json.dumps(admit).encode())


def test_transfer_uses_the_bundle_timestamp(admit: dict[str, Any]) -> None:
    admit["entry"][0]["resource"]["eventCoding"]["code"] = "notification-transfer"
    alert = parse_bundle(admit)
    assert alert.event is AlertEvent.transfer
    assert alert.event_time == datetime(2020, 8, 17, 17, 15, 12, 11868, tzinfo=UTC)


def test_no_period_falls_back_to_the_bundle_timestamp(admit: dict[str, Any]) -> None:
    del entry(admit, "Encounter")["period"]
    assert parse_bundle(admit).event_time.year == 2020


def test_ins_under_its_oid(admit: dict[str, Any]) -> None:
    entry(admit, "Patient")["identifier"] = [
        {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "279035121518989"}
    ]
    assert parse_bundle(admit).identifiers == (
        PatientId("279035121518989", "", "1.2.250.1.213.1.4.8", ""),
    )


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[1, 2]", b'"Bundle"', b"null"])
def test_broken_json_is_400(body: bytes) -> None:
    err = error(body)
    assert (err.status, err.code) == (400, "structure")


def test_not_a_bundle_is_400(admit: dict[str, Any]) -> None:
    assert error(entry(admit, "Patient")).status == 400
    assert error({"resourceType": "Bundle", "type": "message", "entry": "x"}).status == 400


def test_invalid_bundle_diagnostics_quote_no_content(admit: dict[str, Any]) -> None:
    entry(admit, "Patient")["secretField"] = "Halvorson124"
    err = error(admit)
    assert err.status == 400
    assert "Halvorson" not in err.diagnostics and "secretField" in err.diagnostics


def test_non_message_bundle_is_422(admit: dict[str, Any]) -> None:
    admit["type"] = "collection"
    err = error(admit)
    assert (err.status, err.code) == (422, "processing")


def test_first_entry_must_be_a_message_header(admit: dict[str, Any]) -> None:
    admit["entry"].append(admit["entry"].pop(0))
    assert error(admit).status == 422
    empty = copy.deepcopy(admit)
    empty["entry"] = []
    assert error(empty).status == 422


def test_unsupported_event_is_422(admit: dict[str, Any]) -> None:
    admit["entry"][0]["resource"]["eventCoding"]["code"] = "notification-death"
    assert (error(admit).status, error(admit).code) == (422, "not-supported")


def test_no_patient_identifier_is_422(admit: dict[str, Any]) -> None:
    del entry(admit, "Patient")["identifier"]
    assert (error(admit).status, error(admit).code) == (422, "required")


def test_operation_outcome_is_a_valid_r4_resource() -> None:
    outcome = operation_outcome(FhirError(422, "processing", "Bundle.type must be 'message'"))
    assert outcome == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": "Bundle.type must be 'message'",
            }
        ],
    }
    OperationOutcome.model_validate(outcome)


def test_a_boolean_where_a_url_is_expected_is_a_400_not_a_crash() -> None:
    """Found by the fuzzer: fhir.resources raises AttributeError on a boolean MessageHeader
    source endpoint (a url)."""
    bundle = json.loads((SAMPLES / "fhir" / "admit-notification-message-bundle-01.json").read_text(encoding="utf-8"))
    bundle["entry"][0]["resource"]["source"]["endpoint"] = False
    with pytest.raises(FhirError) as err:
        parse_bundle(json.dumps(bundle).encode())
    assert err.value.status == 400


def test_a_date_without_a_time_is_midnight_in_the_territorys_zone(admit: dict[str, Any]) -> None:
    # FHIR requires an offset on a dateTime with a time; a date alone (or a year-month) has none:
    # it is the sender's local day, so the territory's zone decides which instant it is.
    entry(admit, "Encounter")["period"]["start"] = "2026-03-01"
    assert parse_bundle(admit).event_time == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)  # Paris, the default
    assert parse_bundle(admit, tz=ZoneInfo("Indian/Reunion")).event_time == datetime(2026, 2, 28, 20, 0, tzinfo=UTC)
    assert parse_bundle(admit, tz=ZoneInfo("America/Cayenne")).event_time == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
