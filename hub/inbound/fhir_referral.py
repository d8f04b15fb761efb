"""`POST /fhir/ServiceRequest`: a referral from a hospital system (SPEC §9), bearer-token protected.

The ServiceRequest carries a contained Patient (identifiers, name, birthDate), the situation in
`note` or `reasonCode.text`, the referrer in `requester`. 201 with `Location` once kept; the same
request sent again (same `identifier`, or the same bytes) answers 200 with the same `Location`;
4xx with an OperationOutcome for bad input, whose diagnostics never quote the content.
`GET /fhir/ServiceRequest/<ref>` tells the sender the decision (status active, completed, revoked).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from hub.domain.errors import DomainError
from hub.domain.persons import INS, Identifier, parse_nir
from hub.domain.referral import Draft, Source, Status
from hub.inbound.fhir_http import _ACCEPTED_TYPES, FHIR_JSON, _authorised, _error, _outcome
from hub.inbound.fhir_notify import FhirError, read_json
from hub.metrics import Metrics
from hub.services.referrals import ReferralIntake

if TYPE_CHECKING:
    # Imported with the first referral (as in fhir_notify): ~0.15 s at every start otherwise.
    from fhir.resources.R4B.patient import Patient
    from fhir.resources.R4B.servicerequest import ServiceRequest

__all__ = ["PATH", "parse_service_request", "referral_routes"]

log = logging.getLogger(__name__)
PATH = "/fhir/ServiceRequest"
INS_NIR = "1.2.250.1.213.1.4.8"
INS_NIR_TEST = "1.2.250.1.213.1.4.10"  # accepted as an INS only with [alerts] ins_test_oids (SPEC §7)
_STATUS = {Status.PENDING: "active", Status.ACCEPTED: "completed", Status.REFUSED: "revoked"}


def _load(body: bytes) -> ServiceRequest:
    data = read_json(body)  # invalid or too deep JSON: 400 before fhir.resources recurses into it
    if not isinstance(data, dict) or data.get("resourceType") != "ServiceRequest":
        raise FhirError(400, "structure", "body is not a FHIR ServiceRequest")
    from fhir.resources.R4B.servicerequest import ServiceRequest

    try:
        return ServiceRequest.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(".".join(str(p) for p in err["loc"]) + ": " + err["type"]
                          for err in exc.errors(include_input=False, include_url=False)[:3])
        raise FhirError(400, "structure", f"invalid ServiceRequest ({where})") from exc
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise FhirError(400, "structure", f"invalid ServiceRequest ({type(exc).__name__})") from exc


def _patient(request: ServiceRequest) -> Patient:
    from fhir.resources.R4B.patient import Patient

    contained = [r for r in request.contained or [] if isinstance(r, Patient)]
    subject = (request.subject.reference or "") if request.subject else ""
    chosen = next((p for p in contained if subject == f"#{p.id}"), contained[0] if contained else None)
    if chosen is None:
        raise FhirError(422, "required", "a contained Patient (the subject) is required")
    return chosen


def _identifiers(patient: Patient, ins_test_oids: bool) -> tuple[Identifier, ...]:
    ins_oids = {INS_NIR, INS_NIR_TEST} if ins_test_oids else {INS_NIR}
    out: list[Identifier] = []
    for ident in patient.identifier or []:
        value = (ident.value or "").strip()
        system = (ident.system or "").strip()
        if not value:
            continue
        oid = system[len("urn:oid:"):] if system.lower().startswith("urn:oid:") else ""
        if oid in ins_oids:
            try:
                out.append(Identifier(INS, parse_nir(value)))
            except DomainError as exc:
                raise FhirError(422, "value", "Patient.identifier: invalid INS-NIR") from exc
        elif system:
            out.append(Identifier(oid or system, value))
    return tuple(dict.fromkeys(out))


def _name(patient: Patient) -> str:
    for name in patient.name or []:
        if name.text and name.text.strip():
            return name.text.strip()
        words = [*(name.given or []), name.family or ""]
        shown = " ".join(w.strip() for w in words if w and w.strip())
        if shown:
            return shown
    raise FhirError(422, "required", "Patient.name is required")


def _requester(request: ServiceRequest) -> str:
    who = request.requester
    if who is None:
        raise FhirError(422, "required", "ServiceRequest.requester is required")
    ident = who.identifier.value if who.identifier is not None else None
    shown = (who.display or who.reference or ident or "").strip()
    if not shown:
        raise FhirError(422, "required", "ServiceRequest.requester is required")
    return shown[:255]


def parse_service_request(body: bytes, ins_test_oids: bool = False) -> tuple[Draft, str]:
    """The referral draft and the key a resend is known by (the request's business identifier,
    else its bytes). Raises FhirError. Identifiers: an INS-NIR OID becomes the `INS` authority
    (key checked), another `urn:oid:` its OID, any other system the system as sent."""
    request = _load(body)
    if request.status != "active":  # a draft, a revoked or an erroneous request refers nobody
        raise FhirError(422, "processing", "ServiceRequest.status must be 'active'")
    patient = _patient(request)
    if patient.birthDate is None:
        raise FhirError(422, "required", "Patient.birthDate is required")
    reason = "; ".join(n.text for n in request.note or [] if n.text) or "; ".join(
        c.text for c in request.reasonCode or [] if c.text)
    if not reason.strip():
        raise FhirError(422, "required", "the situation is required (note or reasonCode.text)")
    draft = Draft(source=Source.FHIR, referrer=_requester(request), name=_name(patient),
                  born=patient.birthDate, reason=reason, identifiers=_identifiers(patient, ins_test_oids))
    business = next(((i.system or "", i.value) for i in request.identifier or [] if i.value), None)
    if business is not None:
        key = "fhir:id:" + hashlib.sha256(f"{business[0]}|{business[1]}".encode()).hexdigest()
    else:
        key = "fhir:body:" + hashlib.sha256(body).hexdigest()
    return draft, key


def _parsed(raw: bytes, ins_test_oids: bool) -> tuple[Draft, str]:
    """parse_service_request, a parser bug included as a FhirError: the sender gets a clear 422,
    never the 503 (store failure) that asks it to resend the same body for ever."""
    try:
        return parse_service_request(raw, ins_test_oids)
    except (FhirError, DomainError):
        raise
    except Exception as exc:
        # Only the exception's type is logged: its text may quote the request.
        log.error("a FHIR ServiceRequest could not be read (%s)", type(exc).__name__)
        raise FhirError(422, "processing", f"the ServiceRequest could not be read ({type(exc).__name__})") from None


def referral_routes(intake: ReferralIntake, token: str | None, ins_test_oids: bool = False,
                    metrics: Metrics | None = None) -> list[web.RouteDef]:
    def count(outcome: str) -> None:
        if metrics is not None:
            metrics.referrals.labels(source="fhir", outcome=outcome).inc()

    async def create(request: web.Request) -> web.Response:
        if not _authorised(request, token):
            count("unauthorised")
            return _outcome(401, "error", "login", "a valid bearer token is required",
                            headers={"WWW-Authenticate": 'Bearer realm="relais"'})
        if not intake.open:
            count("closed")
            return _outcome(404, "error", "not-supported", "no integrated access point is configured here")
        if request.content_type not in _ACCEPTED_TYPES:
            count("rejected")
            return _outcome(415, "error", "structure", f"send {FHIR_JSON}")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            count("rejected")  # resending it cannot succeed: 413, never a 503 asking for a retry
            return _outcome(413, "error", "too-long", "ServiceRequest too large")
        try:
            draft, key = _parsed(raw, ins_test_oids)
            ref, new = await intake.receive(draft, key)
        except FhirError as err:
            count("rejected")
            return _error(err)
        except DomainError as err:
            count("rejected")
            return _outcome(422, "error", "business-rule", f"refused: {err.key}")
        except Exception:
            log.exception("could not store a FHIR referral: answering 503 so that the sender retries")
            count("store_failed")
            return _outcome(503, "error", "transient", "temporary storage failure, please resend",
                            headers={"Retry-After": "30"})
        count("received" if new else "duplicate")
        location = f"{PATH}/{ref}"
        body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": [{
            "severity": "information", "code": "informational",
            "diagnostics": f"referral {ref} {'received' if new else 'already received'}"}]}
        return web.json_response(body, status=201 if new else 200, content_type=FHIR_JSON,
                                 headers={"Location": location})

    async def read(request: web.Request) -> web.Response:
        if not _authorised(request, token):
            return _outcome(401, "error", "login", "a valid bearer token is required",
                            headers={"WWW-Authenticate": 'Bearer realm="relais"'})
        try:
            found = await intake.status(request.match_info["ref"])
        except DomainError:
            found = None
        if found is None or found.source is not Source.FHIR:
            return _outcome(404, "error", "not-found", "no such ServiceRequest")
        body = {"resourceType": "ServiceRequest", "id": found.ref, "status": _STATUS[found.status],
                "intent": "order", "subject": {"display": found.ref}}
        return web.json_response(body, content_type=FHIR_JSON)

    return [web.post(PATH, create), web.get(PATH + "/{ref}", read)]
