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
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web
from pydantic import ValidationError

from hub.domain.errors import DomainError
from hub.domain.persons import INS, Identifier, parse_nir
from hub.domain.referral import Draft, Source, Status
from hub.domain.team import server_of
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
#: `Identifier.system` of an identifier whose value is a URI (FHIR's own, RFC 3986): a GP's
#: Matrix address may also be given as one (`matrix:u/…` or a matrix.to link).
URI_SYSTEM = "urn:ietf:rfc:3986"
#: A Matrix user id (Matrix spec, "User Identifiers"; read lower-cased, as `!refer --gp` reads it).
_USER_ID = re.compile(r"^@[a-z0-9._=\-/+]+:(?:[a-z0-9.\-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$")
#: The Matrix URI of a user (spec appendix "Matrix URI scheme", MSC2312): `matrix:u/local:server`,
#: maybe with `?action=chat`; and the matrix.to permalink, `https://matrix.to/#/@local:server`.
_MATRIX_URI = re.compile(r"^matrix:(?://[^/]*/)?u/([^/?#]+)(?:[?#].*)?$", re.IGNORECASE)
_MATRIX_TO = re.compile(r"^https://matrix\.to/#/([^/?#]+)(?:\?.*)?$", re.IGNORECASE)


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


def matrix_user(value: str) -> str | None:
    """The Matrix user a contact value names — `matrix:u/gp:server` or
    `https://matrix.to/#/@gp:server` (percent-encoded or not) — or None when it is no Matrix
    address at all. Raises ValueError for a Matrix address that names no valid user (a room, an
    event, a malformed id)."""
    text = value.strip()
    found = _MATRIX_URI.match(text)
    if found is not None:
        user = "@" + unquote(found.group(1))
    elif (found := _MATRIX_TO.match(text)) is not None:
        user = unquote(found.group(1))
    elif text.lower().startswith(("matrix:", "https://matrix.to/")):
        raise ValueError("a Matrix address that names no user")
    else:
        return None
    user = user.lower()
    if not _USER_ID.match(user) or len(user) > 255:
        raise ValueError("not a valid Matrix user id")
    return user


def _gp_addresses(resource: Any, where: str) -> list[tuple[str, str]]:
    """(Matrix user, element) of every Matrix address in a Practitioner's or PractitionerRole's
    `telecom` (system url or other) and `identifier` (system urn:ietf:rfc:3986)."""
    out: list[tuple[str, str]] = []
    candidates: list[tuple[str, str]] = []
    for i, point in enumerate(getattr(resource, "telecom", None) or []):
        if point.value and point.system in ("url", "other"):
            candidates.append((point.value, f"{where}.telecom[{i}]"))
    for i, ident in enumerate(getattr(resource, "identifier", None) or []):
        if ident.value and (ident.system or "").strip().lower() == URI_SYSTEM:
            candidates.append((ident.value, f"{where}.identifier[{i}]"))
    for value, element in candidates:
        try:
            user = matrix_user(value)
        except ValueError:
            raise FhirError(422, "value", f"{element}: not a valid Matrix user address", element) from None
        if user is not None:
            out.append((user, element))
    return out


def gp_of(request: ServiceRequest, patient: Patient) -> tuple[str, str] | None:
    """The GP named by the contained Patient's `generalPractitioner`, when it references a
    contained Practitioner or PractitionerRole (that role's `practitioner` followed too) holding
    a Matrix address: (user id, element it was read from). None when no Matrix address is given
    (a GP known only by RPPS or by reference to an outside resource: nobody is invited).
    Several different Matrix users: 422 — which one is the person's GP cannot be told."""
    from fhir.resources.R4B.practitioner import Practitioner
    from fhir.resources.R4B.practitionerrole import PractitionerRole

    contained = {f"#{r.id}": (i, r) for i, r in enumerate(request.contained or [])
                 if r.id and isinstance(r, (Practitioner, PractitionerRole))}
    found: list[tuple[str, str]] = []
    for ref in patient.generalPractitioner or []:
        target = contained.get((ref.reference or "").strip())
        if target is None:
            continue
        index, resource = target
        found += _gp_addresses(resource, f"ServiceRequest.contained[{index}]")
        if isinstance(resource, PractitionerRole) and resource.practitioner is not None:
            person = contained.get((resource.practitioner.reference or "").strip())
            if person is not None:
                found += _gp_addresses(person[1], f"ServiceRequest.contained[{person[0]}]")
    users = dict.fromkeys(user for user, _ in found)
    if len(users) > 1:
        element = f"ServiceRequest.contained[{(request.contained or []).index(patient)}].generalPractitioner"
        raise FhirError(422, "business-rule", f"{element}: several Matrix users are given", element)
    return found[0] if found else None


@dataclass(frozen=True)
class Parsed:
    draft: Draft
    key: str  # what a resend is known by
    gp_element: str | None = None  # where the GP's Matrix address was read (for a 422 about it)


def parse_service_request(body: bytes, ins_test_oids: bool = False) -> tuple[Draft, str]:
    parsed = parse_referral(body, ins_test_oids)
    return parsed.draft, parsed.key


def parse_referral(body: bytes, ins_test_oids: bool = False) -> Parsed:
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
    gp = gp_of(request, patient)
    draft = Draft(source=Source.FHIR, referrer=_requester(request), name=_name(patient),
                  born=patient.birthDate, reason=reason, identifiers=_identifiers(patient, ins_test_oids),
                  gp=gp[0] if gp else None)
    business = next(((i.system or "", i.value) for i in request.identifier or [] if i.value), None)
    if business is not None:
        key = "fhir:id:" + hashlib.sha256(f"{business[0]}|{business[1]}".encode()).hexdigest()
    else:
        key = "fhir:body:" + hashlib.sha256(body).hexdigest()
    return Parsed(draft, key, gp[1] if gp else None)


def _parsed(raw: bytes, ins_test_oids: bool) -> Parsed:
    """parse_referral, a parser bug included as a FhirError: the sender gets a clear 422,
    never the 503 (store failure) that asks it to resend the same body for ever."""
    try:
        return parse_referral(raw, ins_test_oids)
    except (FhirError, DomainError):
        raise
    except Exception as exc:
        # Only the exception's type is logged: its text may quote the request.
        log.error("a FHIR ServiceRequest could not be read (%s)", type(exc).__name__)
        raise FhirError(422, "processing", f"the ServiceRequest could not be read ({type(exc).__name__})") from None


def _check_gp(parsed: Parsed, allowed_servers: tuple[str, ...], bot_user: str) -> None:
    """The GP will be invited on acceptance: only a user on an allowed server (SPEC §3), never
    the bot. Checked here to name the element; the use case checks it again."""
    gp, element = parsed.draft.gp, parsed.gp_element or "Patient.generalPractitioner"
    if gp is None:
        return
    if server_of(gp) not in allowed_servers:
        raise FhirError(422, "business-rule", f"{element}: the GP's Matrix server is not allowed here", element)
    if gp == bot_user:
        raise FhirError(422, "business-rule", f"{element}: names the bot itself", element)


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
            parsed = _parsed(raw, ins_test_oids)
            _check_gp(parsed, intake.allowed_servers, intake.bot_user)
            ref, new = await intake.receive(parsed.draft, parsed.key)
        except FhirError as err:
            count("rejected")
            return _error(err)
        except DomainError as err:
            count("rejected")
            if err.key == "error.referral_conflict":
                return _outcome(409, "error", "conflict", f"this identifier was already received with another "
                                f"content (referral {err.params.get('ref')}); send a new identifier")
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
