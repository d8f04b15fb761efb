"""FHIR ServiceRequest → referral draft (SPEC §9): pure, validated with fhir.resources R4B."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from hub.domain.persons import INS, Identifier
from hub.domain.referral import Source
from hub.inbound.fhir_notify import FhirError
from hub.inbound.fhir_referral import parse_service_request

NIR = "269054958815780"


def _request(**changes: Any) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": "pat", "birthDate": "1938-07-14",
        "name": [{"use": "official", "family": "Exemple", "given": ["Paulette", "Marie"]}],
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": NIR},
                       {"system": "urn:oid:1.2.250.1.71.4.2.7", "value": "IPP-1"},
                       {"system": "https://chu-x.example/patients", "value": "42"}],
    }
    patient.update(changes.pop("patient", {}))
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest", "status": "active", "intent": "proposal",
        "contained": [patient], "subject": {"reference": "#pat"},
        "requester": {"reference": "Practitioner/12", "display": "Dr Martin, CH Est"},
        "reasonCode": [{"text": "chutes répétées"}],
    }
    request.update(changes)
    return request


def _parse(request: dict[str, Any], **kw: Any) -> Any:
    return parse_service_request(json.dumps(request).encode(), **kw)


def test_a_service_request_becomes_a_referral_draft() -> None:
    draft, key = _parse(_request())
    assert (draft.source, draft.name, draft.born, draft.reason) == (
        Source.FHIR, "Paulette Marie Exemple", date(1938, 7, 14), "chutes répétées")
    assert draft.referrer == "Dr Martin, CH Est" and draft.referrer_room is None
    assert draft.identifiers == (Identifier(INS, NIR), Identifier("1.2.250.1.71.4.2.7", "IPP-1"),
                                 Identifier("https://chu-x.example/patients", "42"))
    assert key.startswith("fhir:body:")


def test_note_wins_over_reason_code_and_a_business_identifier_keys_resends() -> None:
    one, key1 = _parse(_request(note=[{"text": "vit seule"}, {"text": "fils à 600 km"}],
                                identifier=[{"system": "urn:oid:1.2.3", "value": "SR-9"}]))
    _, key2 = _parse(_request(note=[{"text": "autre texte"}],
                              identifier=[{"system": "urn:oid:1.2.3", "value": "SR-9"}]))
    assert one.reason == "vit seule; fils à 600 km" and key1 == key2 and key1.startswith("fhir:id:")
    text_name, _ = _parse(_request(patient={"name": [{"text": "Paulette EXEMPLE"}]}))
    assert text_name.name == "Paulette EXEMPLE"


def test_the_ins_test_oid_counts_only_when_configured() -> None:
    test_ins = {"identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": NIR}]}
    plain, _ = _parse(_request(patient=test_ins))
    assert plain.identifiers == (Identifier("1.2.250.1.213.1.4.10", NIR),)
    allowed, _ = _parse(_request(patient=test_ins), ins_test_oids=True)
    assert allowed.identifiers == (Identifier(INS, NIR),)


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"not json", 400, "structure"),
    (json.dumps({"resourceType": "Patient"}).encode(), 400, "structure"),
    (json.dumps(_request(intent=True)).encode(), 400, "structure"),
    (json.dumps(_request(status="revoked")).encode(), 422, "processing"),
    (json.dumps(_request(status="draft")).encode(), 422, "processing"),
    (json.dumps(_request(contained=[])).encode(), 422, "required"),
    (json.dumps(_request(patient={"birthDate": None})).encode(), 422, "required"),
    (json.dumps(_request(patient={"name": []})).encode(), 422, "required"),
    (json.dumps(_request(reasonCode=None)).encode(), 422, "required"),
    (json.dumps(_request(requester=None)).encode(), 422, "required"),
    (json.dumps(_request(patient={"identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8",
                                                  "value": "269054958815781"}]})).encode(), 422, "value"),
])
def test_bad_input_is_a_specific_error_that_quotes_no_content(body: bytes, status: int, code: str) -> None:
    with pytest.raises(FhirError) as err:
        parse_service_request(body)
    assert (err.value.status, err.value.code) == (status, code), err.value.diagnostics
    assert "Exemple" not in err.value.diagnostics and NIR[:10] not in err.value.diagnostics
