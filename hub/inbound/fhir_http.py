"""`POST /fhir/$process-message`: Da Vinci notifications over HTTPS, bearer-token protected.

200 once the bundle is kept (then it is matched and posted); 4xx with an OperationOutcome
for bad input; 401 without the right token; 503 when it could not be kept (retry).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from hub.inbound.fhir_notify import FhirError, NotActed, digest, operation_outcome
from hub.metrics import Metrics
from hub.services.alerts import AlertService

__all__ = ["PATH", "fhir_routes"]

log = logging.getLogger(__name__)
PATH = "/fhir/$process-message"
FHIR_JSON = "application/fhir+json"
_ACCEPTED_TYPES = {FHIR_JSON, "application/json", "application/json+fhir"}


def _outcome(status: int, severity: str, code: str, diagnostics: str,
             headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
    return web.json_response(body, status=status, content_type=FHIR_JSON, headers=headers)


def _error(err: FhirError) -> web.Response:
    return web.json_response(operation_outcome(err), status=err.status, content_type=FHIR_JSON)


def _shown(value: str) -> str:
    """A header value fit for a log line: printable ASCII, short."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in value)[:80] or "-"


def _authorised(request: web.Request, token: str | None) -> bool:
    if not token:
        return False  # no token configured: the endpoint stays shut
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def fhir_routes(service: AlertService, token: str | None, metrics: Metrics | None = None) -> list[web.RouteDef]:
    if not token:
        log.warning("http.fhir_token is not set: %s answers 401 to everyone", PATH)

    def count(outcome: str) -> None:
        if metrics is not None:
            metrics.alerts.labels(source="fhir", outcome=outcome).inc()

    async def process_message(request: web.Request) -> web.Response:
        if not _authorised(request, token):
            count("unauthorised")
            return _outcome(401, "error", "login", "a valid bearer token is required",
                            headers={"WWW-Authenticate": 'Bearer realm="relais"'})
        if request.content_type not in _ACCEPTED_TYPES:
            count("rejected")
            return _outcome(415, "error", "structure", f"send {FHIR_JSON}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            count("rejected")
            return _outcome(413, "error", "too-long", "bundle too large")
        try:
            alert = service.parse("fhir", body)
        except NotActed as exc:
            count("not_acted")  # SPEC §7: answered, counted, not kept (as an HL7 A28)
            log.info("FHIR not_acted from %s, bundle id %s: %s", _shown(exc.sender), _shown(exc.control_id),
                     exc.diagnostics)
            return _outcome(200, "information", "informational", exc.diagnostics)
        except FhirError as err:
            if err.key:
                count(err.key)
                log.warning("FHIR %s from %s, bundle id %s: answered %d %s", err.key, _shown(err.sender),
                            _shown(err.control_id), err.status, err.diagnostics)
            else:
                count("rejected")
            return _error(err)
        except Exception as exc:  # a parser bug: the sender gets a clear answer, never a 500 to retry for ever
            # Only the exception's type is logged: its text may quote the notification.
            log.error("a FHIR notification could not be read (%s)", type(exc).__name__)
            count("rejected")
            return _outcome(422, "error", "processing", f"the notification could not be read ({type(exc).__name__})")
        try:
            received = await service.receive(alert, body, digest=digest(body))
        except Exception:
            log.exception("could not store a FHIR notification: answering 503 so that the sender retries")
            count("store_failed")
            return _outcome(503, "error", "transient", "temporary storage failure, please resend",
                            headers={"Retry-After": "30"})
        if received.reused_control_id:
            # Not a resend (the content differs): kept and processed, never dropped; the operator
            # learns that the sender reuses bundle ids, which can hide a real resend.
            count("control_id_reused")
            log.warning("FHIR control_id_reused from %s, bundle id %s: another content already came under this "
                        "id: processed as a new notification", _shown(alert.sender), _shown(alert.control_id))
        if received.pending:
            try:
                await service.process(received.message_id)
            except Exception:
                log.exception("FHIR notification kept but not processed yet")
        return _outcome(200, "information", "informational",
                        "duplicate, already received" if received.duplicate else "accepted")

    return [web.post(PATH, process_message)]
