"""Da Vinci Unsolicited Notifications (FHIR R4 message Bundle) → Alert, pure.

The samples and the IG are R4: the default fhir.resources models (R5) reject them, R4B reads them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hub.domain.alerts import Alert, AlertEvent, MessageRefused, PatientId
from hub.domain.transitions import PARIS as _PARIS  # the default territory: `[care] timezone` (SPEC §5)

if TYPE_CHECKING:
    # Imported when the first notification arrives (`_models`): fhir.resources costs ~14 MB of
    # resident memory and ~0.1 s at every start, for a channel many sites never use.
    from fhir.resources.R4B.bundle import Bundle

__all__ = ["EVENTS", "FhirError", "NotActed", "digest", "operation_outcome", "parse_bundle", "read_json"]

EVENTS: dict[str, AlertEvent] = {
    "notification-admit": AlertEvent.admission,
    "notification-discharge": AlertEvent.discharge,
    "notification-transfer": AlertEvent.transfer,
}
#: A notification about an Encounter that never was (FHIR R4 Encounter.status: `entered-in-error`,
#: "should not have been part of this patient's record"; `cancelled`, "ended before it has
#: begun") retracts the event it announces, as HL7 A11/A13/A12 do: never a true admission.
RETRACTED = frozenset({"entered-in-error", "cancelled"})
_RETRACTS: dict[AlertEvent, AlertEvent] = {
    AlertEvent.admission: AlertEvent.cancel_admission,
    AlertEvent.discharge: AlertEvent.cancel_discharge,
    AlertEvent.transfer: AlertEvent.cancel_transfer,
}
#: An Encounter that has not begun (FHIR R4 Encounter.status `planned`: "The Encounter has not yet
#: started"): a scheduled admission, an expected discharge or transfer. Telling it as done would
#: move the person to hospital (or home) before it happens: not acted on, as an A28 is.
NOT_BEGUN = frozenset({"planned"})
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
#: HL7 v3 ActReason, whose code HTEST ("test health data": simulated or synthetic data used to test
#: a system outside production) is the label FHIR R4 gives test data (security labels,
#: Resource.meta.security; some senders put it in meta.tag), under any of its names.
_ACT_REASON = frozenset({"http://terminology.hl7.org/CodeSystem/v3-ActReason", "http://hl7.org/fhir/v3/ActReason",
                         "urn:oid:2.16.840.1.113883.5.8"})
TEST_DATA = "HTEST"
_PARTIAL = re.compile(r"(\d{4})(?:-(\d{2}))?")


class FhirError(MessageRefused):
    """A notification we refuse: HTTP status, OperationOutcome issue code, diagnostics.

    Diagnostics never quote the submitted content (it may hold personal data).
    """

    def __init__(self, status: int, code: str, diagnostics: str, expression: str | None = None, *, key: str = "",
                 sender: str = "", control_id: str = "") -> None:
        super().__init__(f"{status} {code}: {diagnostics}")
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        # Set for a refusal the operator must hear of: one log line naming the sender
        # (MessageHeader.source) and the bundle id, and `key` as its metric label.
        self.key = key
        self.sender = sender
        self.control_id = control_id
        self.expression = expression  # the element at fault (OperationOutcome.issue.expression)


class NotActed(MessageRefused):
    """A notification Relais does not act on (an encounter not begun): 200, counted, not kept."""

    def __init__(self, diagnostics: str, *, sender: str = "", control_id: str = "") -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.sender = sender
        self.control_id = control_id


#: Code systems whose dischargeDisposition codes say where the person goes, and the codes
#: transitions.discharge_setting reads: FHIR discharge-disposition words, HL7 v2 table 0112,
#: NUBC / UB-92 patient discharge status.
_DESTINATION_SYSTEMS = (
    "http://terminology.hl7.org/codesystem/discharge-disposition",
    "http://terminology.hl7.org/codesystem/v2-0112", "urn:oid:2.16.840.1.113883.12.112",
    "http://terminology.hl7.org/codesystem/nubc-ub92", "http://www.nubc.org/patient-discharge",
    "https://www.nubc.org/codesystem/patdischargestatus",
)
_DISPOSITION_WORD = re.compile(r"^[a-z][a-z-]*$")


def _destination_code(codings: list[Any]) -> str:
    """The code of the first coding that says where the person goes ("" when none does).

    FR Core binds dischargeDisposition to the *circumstances* of the discharge as well
    (fr-core-cs-circonstances-sortie: 3 = medical decision, 4 = against advice…), the codes IHE PAM
    France puts in PV1-36, numbers that table 0112 and NUBC use for destinations: read as such, a
    medical discharge home ("3") was told "to a nursing home". So a code is read only under a
    destination system, or, without a system, when it is one of FHIR's words (`home`, `exp`)."""
    for coding in codings:
        code = (coding.code or "").strip()
        system = (coding.system or "").strip().lower().rstrip("/")
        if not code:
            continue
        if system in _DESTINATION_SYSTEMS or (not system and _DISPOSITION_WORD.fullmatch(code)):
            return code
    return ""


def operation_outcome(err: FhirError) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": err.code, "diagnostics": err.diagnostics}
    if err.expression:
        issue["expression"] = [err.expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _models() -> tuple[type[Any], type[Any], type[Any], type[Any]]:
    """(Bundle, MessageHeader, Encounter, Patient), imported on first use."""
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.encounter import Encounter
    from fhir.resources.R4B.messageheader import MessageHeader
    from fhir.resources.R4B.patient import Patient

    return Bundle, MessageHeader, Encounter, Patient


#: A notification bundle nests about a dozen levels (Bundle.entry.resource.identifier.type.coding…);
#: far deeper JSON is an attack on the parsers' recursion, refused before it reaches them.
MAX_DEPTH = 64


def _too_deep(data: Any, limit: int = MAX_DEPTH) -> bool:
    """True when arrays and objects nest more than `limit` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose property names are unique (FHIR JSON: "properties are never repeated").
    A repeated one is read as its last value by some parsers and its first by others: which
    status, which identifier the sender meant is unknowable, so the body is refused."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


_PROPERTY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def read_json(body: bytes | bytearray) -> Any:
    """A FHIR body as JSON, checked before any FHIR model sees it (both FHIR doors use this):
    invalid or too deeply nested JSON, or an object repeating a property, is a FhirError 400,
    never a crash."""
    try:
        data = json.loads(body, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        named = f" '{exc.key}'" if _PROPERTY.fullmatch(exc.key) else ""  # a FHIR element name, never content
        raise FhirError(400, "structure", f"JSON object repeats the property{named}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise FhirError(400, "structure", "body is not valid JSON") from exc
    except RecursionError:  # 100 kB of "[": the decoder's own recursion gives up
        raise FhirError(400, "structure", f"JSON nested deeper than {MAX_DEPTH} levels") from None
    if _too_deep(data):
        raise FhirError(400, "structure", f"JSON nested deeper than {MAX_DEPTH} levels")
    return data


#: What an engine regenerates when it resends a notification: the Bundle's timestamp, and the
#: version stamps a FHIR server puts on every resource it serves (`meta.lastUpdated`, `versionId`).
_REGENERATED_META = ("lastUpdated", "versionId")


def digest(body: bytes | bytearray) -> str:
    """SHA-256 of a notification as a resend repeats it: the JSON read and written canonically
    (key order, spacing, escapes, a BOM do not count), without `Bundle.timestamp` and the
    resources' `meta.lastUpdated` / `meta.versionId`. The bundle must already have been read."""
    data = read_json(body)

    def strip(value: Any, top: bool = False) -> Any:
        if isinstance(value, list):
            return [strip(item) for item in value]
        if not isinstance(value, dict):
            return value
        out = {key: strip(item) for key, item in value.items() if not (top and key == "timestamp")}
        meta = out.get("meta")
        if "resourceType" in out and isinstance(meta, dict):
            kept = {key: item for key, item in meta.items() if key not in _REGENERATED_META}
            if kept:
                out["meta"] = kept
            else:
                del out["meta"]  # a server that stamps resources adds a meta the first sending had not
        return out

    canonical = json.dumps(strip(data, top=True), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _load(body: bytes | Mapping[str, Any]) -> Bundle:
    if isinstance(body, bytes | bytearray):
        data = read_json(body)
    else:
        data = dict(body)
        if _too_deep(data):
            raise FhirError(400, "structure", f"JSON nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise FhirError(400, "structure", "body is not a FHIR Bundle")
    try:
        bundle: Bundle = _models()[0].model_validate(data)
        return bundle
    except ValidationError as exc:
        where = "; ".join(
            ".".join(str(part) for part in err["loc"]) + ": " + err["type"]
            for err in exc.errors(include_input=False, include_url=False)[:3]
        )
        raise FhirError(400, "structure", f"invalid Bundle ({where})") from exc
    # fhir.resources trips on some wrong types instead of reporting them: "resourceType": null
    # (TypeError), a boolean where a URL is expected (AttributeError)…
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise FhirError(400, "structure", f"invalid Bundle ({type(exc).__name__})") from exc


_HISTORY = re.compile(r"/_history/[^/]*$")


def _resolve(bundle: Bundle, reference: str | None) -> Any:
    """The entry a reference points to: by fullUrl, Type/id, or the tail of an absolute URL
    (a version, `/_history/2`, ignored)."""
    reference = _HISTORY.sub("", (reference or "").strip())
    if not reference:
        return None
    for entry in bundle.entry or []:
        res = entry.resource
        if res is None:
            continue
        if reference == entry.fullUrl:
            return res
        local = f"{res.get_resource_type()}/{res.id}" if res.id else None
        if local is not None and (reference == local or reference.endswith("/" + local)):
            return res
    return None


def _focus_encounter(bundle: Bundle, header: Any, encounter_type: type[Any]) -> Any:
    """The Encounter the notification is about: the one MessageHeader.focus designates. When the
    focus designates none of the bundle's Encounters (missing, or pointing outside the bundle),
    the bundle's Encounter is used only when it holds exactly one: another stay (an earlier one,
    a newborn's) is not the subject, and taking it would tell the wrong time, place or status."""
    focused = [res for ref in header.focus or [] if isinstance(res := _resolve(bundle, ref.reference), encounter_type)]
    if len({id(res) for res in focused}) > 1:
        raise FhirError(422, "processing", "MessageHeader.focus designates several Encounters", "MessageHeader.focus")
    if focused:
        return focused[0]
    encounters = [e.resource for e in bundle.entry or [] if isinstance(e.resource, encounter_type)]
    if len(encounters) > 1:
        raise FhirError(422, "processing", "MessageHeader.focus does not designate one of the bundle's Encounters",
                        "MessageHeader.focus")
    return encounters[0] if encounters else None


def _aware(value: object, local: tzinfo) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime; without an offset (a date, a year-month),
    it is the sender's local time: the territory's zone `local`."""
    if isinstance(value, datetime):
        offset = value.utcoffset()
        # pydantic's own TzInfo is swapped for a stdlib timezone
        return value.replace(tzinfo=local if offset is None else timezone(offset))
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=local)
    if isinstance(value, str) and (m := _PARTIAL.fullmatch(value)):
        return datetime(int(m.group(1)), int(m.group(2) or 1), 1, tzinfo=local)
    return None


def _event_time(moment: object, timestamp: object, local: tzinfo, *,
                end_of_stay: bool) -> tuple[datetime, bool] | None:
    """(when the event happened, whether only its day — or month, year — is known): the period's
    start or end, else Bundle.timestamp. FHIR R4 `dateTime` may be a date (`2026-11-29`): it
    names the day, not its midnight. A discharge on that day is ordered at the notification's
    Bundle.timestamp when it falls within the day (the discharge happened no later), else at the
    day's last second, so that it never sorts before the same day's admission or transfer (the
    HL7 v2 rule, hl7v2._event_time); an admission at the day's start. The notice shows the day."""
    start = _aware(moment, local)
    if start is None:
        stamp = _aware(timestamp, local)
        return None if stamp is None else (stamp, False)
    if isinstance(moment, datetime):
        return start, False
    if isinstance(moment, date):
        end = datetime.combine(moment + timedelta(days=1), time(), tzinfo=local)
    else:  # a year or year-month (`_PARTIAL`)
        month = isinstance(moment, str) and len(moment) > 4
        end = (start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1) if month
               else start.replace(year=start.year + 1))
    if not end_of_stay:
        return start, True
    stamp = _aware(timestamp, local)
    bound = stamp if isinstance(timestamp, datetime) and stamp is not None and start <= stamp < end else None
    return (bound if bound is not None else end - timedelta(seconds=1)), True


def _identifiers(identifiers: list[Any]) -> tuple[PatientId, ...]:
    """FHIR Identifiers (a Patient's, or a reference's logical identifier) → PatientIds."""
    ids = []
    for ident in identifiers:
        value = (ident.value or "").strip()
        if not value:
            continue
        system = (ident.system or "").strip()
        type_code = ""
        for coding in (ident.type.coding or []) if ident.type else []:
            if coding.system == _V2_0203 and coding.code:
                type_code = coding.code
                break
        if system.lower().startswith("urn:oid:"):
            ids.append(PatientId(value, "", system[len("urn:oid:") :], type_code))
        else:
            ids.append(PatientId(value, system, "", type_code))
    return tuple(dict.fromkeys(ids))


def _subject_ids(bundle: Bundle, encounter: Any, patient_type: type[Any]) -> tuple[PatientId, ...]:
    """The identifiers of the person the notification is about: Encounter.subject as a reference
    into the bundle or to a resource contained in the Encounter, or as a logical reference (its
    `identifier`). When the subject is missing or points nowhere, the bundle's Patient is used
    only when it holds exactly one: any other Patient (a mother, a related person's record) is
    not the subject, and taking it would alert the wrong file."""
    subject = encounter.subject if encounter is not None else None
    reference = (subject.reference or "").strip() if subject is not None else ""
    found: Any = None
    if reference.startswith("#"):
        found = next((res for res in encounter.contained or []
                      if isinstance(res, patient_type) and res.id == reference[1:]), None)
    elif reference:
        found = _resolve(bundle, reference)
    ids = _identifiers(found.identifier or []) if isinstance(found, patient_type) else ()
    logical = subject.identifier if subject is not None else None
    if logical is not None:
        ids = tuple(dict.fromkeys((*ids, *_identifiers([logical]))))
    if ids or isinstance(found, patient_type):
        return ids
    patients = [e.resource for e in bundle.entry or [] if isinstance(e.resource, patient_type)]
    if len(patients) > 1:
        raise FhirError(422, "processing", "Encounter.subject does not designate one of the bundle's Patients")
    return _identifiers(patients[0].identifier or []) if patients else ()


#: Encounter.location.status (FHIR R4): `planned` and `reserved` are where the patient is to go,
#: not where they are.
_NOT_THERE = frozenset({"planned", "reserved"})


def _current_location(encounter: Any) -> Any:
    """The reference to where the patient is (or, the stay ended, was last): among the
    Encounter.location entries, the last `active` one, else the last without a status, else the
    last `completed` one — never a `planned` or `reserved` one (an engine lists the ward a
    transfer is booked to after the one the patient is in)."""
    entries = [e for e in encounter.location or [] if e.location is not None and (e.status or "") not in _NOT_THERE]
    for wanted in ("active", "", "completed"):
        chosen = [e for e in entries if (e.status or "") == wanted]
        if chosen:
            return chosen[-1].location
    return None


def _named(bundle: Bundle, holder: Any, reference: Any) -> str:
    """What a reference to a Location or an Organization names: its `display`, else the `name` of
    the resource it points to, in the bundle or contained in `holder`."""
    if reference is None:
        return ""
    if reference.display and reference.display.strip():
        return str(reference.display).strip()
    target = (reference.reference or "").strip()
    found = (next((r for r in getattr(holder, "contained", None) or [] if r.id == target[1:]), None)
             if target.startswith("#") else _resolve(bundle, target))
    name = getattr(found, "name", None) if found is not None else None
    return name.strip() if isinstance(name, str) else ""


def _encounter_key(encounter: Any) -> str:
    """What names the encounter across its notifications (admit, transfer, discharge, a
    retraction): its first business identifier, else its id; kept as the alert's movement id,
    hashed (fixed length, no visit number stored)."""
    if encounter is None:
        return ""
    ident = next((i for i in encounter.identifier or [] if (i.value or "").strip()), None)
    key = f"identifier|{(ident.system or '').strip()}|{ident.value.strip()}" if ident is not None else (
        f"id|{encounter.id}" if encounter.id else "")
    return "fhir:" + hashlib.sha256(key.encode()).hexdigest()[:40] if key else ""


def _labelled_test(bundle: Bundle) -> bool:
    """True when the Bundle or any resource in it (contained ones included) carries the HTEST
    label in meta.security or meta.tag: a test patient or a test message."""
    resources: list[Any] = [bundle]
    for entry in bundle.entry or []:
        if entry.resource is not None:
            resources += [entry.resource, *(getattr(entry.resource, "contained", None) or [])]
    for resource in resources:
        meta = getattr(resource, "meta", None)
        for coding in [*(meta.security or []), *(meta.tag or [])] if meta is not None else []:
            if (coding.code or "").strip().upper() == TEST_DATA and (coding.system or "").strip() in _ACT_REASON:
                return True
    return False


def parse_bundle(body: bytes | Mapping[str, Any], tz: tzinfo = _PARIS, *, test_data: bool = False) -> Alert:
    """A FHIR R4 admit/discharge/transfer notification Bundle → Alert; FhirError otherwise. `tz`:
    the territory's zone (`[care] timezone`), for times without an offset. `test_data`: whether
    this hub takes test data (`[alerts] processing_ids` lists T or D, the HL7 v2 MSH-11 rule);
    otherwise a bundle labelled HTEST is refused 422 and nothing is kept (SPEC §7)."""
    _, MessageHeader, Encounter, Patient = _models()
    bundle = _load(body)
    if bundle.type != "message":
        raise FhirError(422, "processing", "Bundle.type must be 'message'")
    entries = bundle.entry or []
    header = entries[0].resource if entries else None
    if not isinstance(header, MessageHeader):
        raise FhirError(422, "processing", "first entry must be a MessageHeader")
    source = header.source
    sender = str(source.endpoint or source.name or "") if source else ""
    if not test_data and _labelled_test(bundle):
        raise FhirError(422, "business-rule", "test data (meta.security HTEST) is not taken by this receiver "
                        "([alerts] processing_ids)", key="test_data", sender=sender,
                        control_id=bundle.id or header.id or "")
    trigger = (header.eventCoding.code or "") if header.eventCoding else ""
    event = EVENTS.get(trigger)
    if event is None:
        raise FhirError(422, "not-supported", "unsupported MessageHeader.event")

    encounter = _focus_encounter(bundle, header, Encounter)
    identifiers = _subject_ids(bundle, encounter, Patient)
    if not identifiers:
        raise FhirError(422, "required", "no Patient.identifier in the notification")

    status = (encounter.status or "") if encounter is not None else ""
    if status in NOT_BEGUN:
        raise NotActed(f"not acted on: Encounter.status {status} (the encounter has not begun)",
                       sender=sender, control_id=bundle.id or header.id or "")
    if status in RETRACTED:
        event = _RETRACTS[event]
    period = encounter.period if encounter else None
    moment: object = None
    if period is not None:
        moment = {AlertEvent.admission: period.start, AlertEvent.discharge: period.end}.get(event)
    when = _event_time(moment, bundle.timestamp, tz, end_of_stay=event is AlertEvent.discharge)
    if when is None:
        raise FhirError(422, "required", "no event time (Encounter.period, Bundle.timestamp)")
    event_time, day_only = when

    facility = _named(bundle, encounter, encounter.serviceProvider) if encounter is not None else ""
    # The sender names the hospital when the encounter does not: shown, never compared.
    sender_facility = _named(bundle, header, header.sender)
    shown = _named(bundle, encounter, _current_location(encounter)) if encounter is not None else ""
    unit = shown if shown not in (facility, sender_facility) else ""
    hospitalization = encounter.hospitalization if encounter else None
    disposition = destination = ""
    if hospitalization is not None:
        if hospitalization.dischargeDisposition is not None:
            disposition = _destination_code(hospitalization.dischargeDisposition.coding or [])
        if hospitalization.destination is not None:
            destination = hospitalization.destination.display or ""
    klass = encounter.class_fhir if encounter is not None else None
    patient_class = (klass.code or "") if klass is not None else ""
    return Alert(
        source="fhir",
        sender=sender,
        control_id=bundle.id or header.id or "",
        event=event,
        trigger=trigger,
        event_time=event_time,
        day_only=day_only,
        identifiers=identifiers,
        facility=facility,
        sender_facility=sender_facility,
        unit=unit,
        patient_class=patient_class,
        discharge_disposition=disposition,
        discharge_destination=destination,
        movement_id=_encounter_key(encounter),
    )
