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


def _with_gp(*gp_resources: dict[str, Any], refs: tuple[str, ...] = ("#gp",)) -> dict[str, Any]:
    request = _request(patient={"generalPractitioner": [{"reference": r} for r in refs]})
    request["contained"] = [*request["contained"], *gp_resources]
    return request


@pytest.mark.parametrize("address", [
    {"telecom": [{"system": "phone", "value": "+33 1 23 45 67 89"},
                 {"system": "email", "value": "dr.martin@medecin.mssante.fr"},
                 {"system": "url", "value": "matrix:u/dr.martin:example.org?action=chat"}]},
    {"telecom": [{"system": "url", "value": "https://matrix.to/#/@dr.martin:example.org"}]},
    {"telecom": [{"system": "other", "value": "https://matrix.to/#/%40dr.martin%3Aexample.org?via=example.org"}]},
    {"identifier": [{"system": "https://rpps.esante.gouv.fr", "value": "10003456789"},
                    {"system": "urn:ietf:rfc:3986", "value": "matrix:u/dr.martin:example.org"}]},
])
def test_the_gp_is_read_from_a_contained_practitioner_s_matrix_address(address: dict[str, Any]) -> None:
    draft, _ = _parse(_with_gp({"resourceType": "Practitioner", "id": "gp", **address}))
    assert draft.gp == "@dr.martin:example.org"


def test_the_gp_is_read_through_a_practitioner_role_and_absent_without_a_matrix_address() -> None:
    role = {"resourceType": "PractitionerRole", "id": "gp", "practitioner": {"reference": "#doc"}}
    doc = {"resourceType": "Practitioner", "id": "doc",
           "telecom": [{"system": "url", "value": "matrix:u/gp:example.org"}]}
    assert _parse(_with_gp(role, doc))[0].gp == "@gp:example.org"
    # An MSSanté address (e-mail), an RPPS number, an outside reference: no Matrix user, nobody invited.
    mail_only = {"resourceType": "Practitioner", "id": "gp",
                 "telecom": [{"system": "email", "value": "gp@medecin.mssante.fr"}],
                 "identifier": [{"system": "https://rpps.esante.gouv.fr", "value": "10003456789"}]}
    assert _parse(_with_gp(mail_only))[0].gp is None
    assert _parse(_with_gp(refs=("Practitioner/12",)))[0].gp is None
    # The same user written twice is one GP.
    twice = {"resourceType": "Practitioner", "id": "gp",
             "telecom": [{"system": "url", "value": "matrix:u/gp:example.org"},
                         {"system": "url", "value": "https://matrix.to/#/@gp:example.org"}]}
    assert _parse(_with_gp(twice))[0].gp == "@gp:example.org"


@pytest.mark.parametrize(("gp", "element"), [
    ({"telecom": [{"system": "url", "value": "matrix:u/dr martin"}]}, "ServiceRequest.contained[1].telecom[0]"),
    ({"telecom": [{"system": "url", "value": "matrix:r/somewhere:example.org"}]},
     "ServiceRequest.contained[1].telecom[0]"),
    ({"telecom": [{"system": "url", "value": "https://matrix.to/#/!room:example.org"}]},
     "ServiceRequest.contained[1].telecom[0]"),
    ({"identifier": [{"system": "urn:ietf:rfc:3986", "value": "matrix:u/:example.org"}]},
     "ServiceRequest.contained[1].identifier[0]"),
    ({"telecom": [{"system": "url", "value": "matrix:u/a:example.org"},
                  {"system": "url", "value": "matrix:u/b:example.org"}]},
     "ServiceRequest.contained[0].generalPractitioner"),
])
def test_a_malformed_or_ambiguous_gp_address_is_a_422_naming_the_element(gp: dict[str, Any], element: str) -> None:
    with pytest.raises(FhirError) as err:
        _parse(_with_gp({"resourceType": "Practitioner", "id": "gp", **gp}))
    assert err.value.status == 422 and err.value.expression == element, err.value.diagnostics
    assert "example.org" not in err.value.diagnostics and "Exemple" not in err.value.diagnostics
