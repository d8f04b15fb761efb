"""Patient identifiers as hospitals send them, and the one rule that matches them to a person.

A person is matched by identifier only (SPEC §7), never by name or birth date.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "INS",
    "INS_NIA_OID",
    "INS_NIA_TEST_OID",
    "INS_NIR_OID",
    "INS_NIR_TEST_OID",
    "PatientId",
    "matches",
]

INS = "INS"  # the authority a person's INS-NIR is recorded under
INS_NIR_OID = "1.2.250.1.213.1.4.8"
INS_NIA_OID = "1.2.250.1.213.1.4.9"
INS_NIR_TEST_OID = "1.2.250.1.213.1.4.10"
INS_NIA_TEST_OID = "1.2.250.1.213.1.4.11"
_INS_OIDS = frozenset({INS_NIR_OID, INS_NIA_OID})
_INS_TEST_OIDS = frozenset({INS_NIR_TEST_OID, INS_NIA_TEST_OID})


@dataclass(frozen=True)
class PatientId:
    """One PID-3 repetition (CX) or one FHIR Patient.identifier."""

    value: str
    authority: str  # CX.4.1 namespace id ("CHU-X", "ASIP-SANTE-INS-NIR") or a FHIR system
    authority_oid: str = ""  # CX.4.2 universal id, or the X of a FHIR `urn:oid:X` system
    type_code: str = ""  # CX.5 ("PI", "INS", "NH", …) or Identifier.type v2-0203 code


def _bare_oid(authority: str) -> str:
    authority = authority.strip()
    return authority[len("urn:oid:") :] if authority.lower().startswith("urn:oid:") else authority


def matches(
    person_ids: Iterable[tuple[str, str]],
    alert_ids: Iterable[PatientId],
    *,
    ins_test_oids: bool,
) -> bool:
    """True when one of the person's (authority, value) pairs designates an alert identifier.

    `authority` is a namespace ("CHU-X"), an OID, or "INS". A namespace or OID matches the
    identifier's namespace id or universal id. "INS" matches an identifier whose universal id
    is the INS-NIR or INS-NIA OID, or one of the national test OIDs when `ins_test_oids`.
    An identifier under a test OID never matches in production, however the person's
    authority is spelled.
    """
    accepted_ins = _INS_OIDS | _INS_TEST_OIDS if ins_test_oids else _INS_OIDS
    candidates = [
        pid
        for pid in alert_ids
        if pid.value.strip() and (ins_test_oids or pid.authority_oid not in _INS_TEST_OIDS)
    ]
    for authority, value in person_ids:
        authority, value = authority.strip(), value.strip()
        if not authority or not value:
            continue
        for pid in candidates:
            if pid.value.strip() != value:
                continue
            if authority.upper() == INS:
                if pid.authority_oid in accepted_ins:
                    return True
            elif _bare_oid(authority) in {pid.authority, _bare_oid(pid.authority_oid)} - {""}:
                return True
    return False
