"""Patient identifiers as hospitals send them, and the one rule that matches them to a person.

A person is matched by identifier only (SPEC §7), never by name or birth date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "INS",
    "INS_NIA_OID",
    "INS_NIA_TEST_OID",
    "INS_NIR_OID",
    "INS_NIR_TEST_OID",
    "PatientId",
    "authority_key",
    "matches",
    "spellings",
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


#: HL7 table 0203 types that number a stay or an account, not a person: the same authority
#: often issues both (IPP 4455 for one patient, account 4455 for another's stay).
_NOT_PERSON = frozenset({"AN", "ANC", "AND", "ANT", "VN"})
_URN_OID = "urn:oid:"
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9]\d*))+")
_DOTTED = re.compile(r"[\d.]*\.[\d.]*")  # meant as an OID (a namespace may be all digits: a FINESS)
_URL = re.compile(r"(?i)(https?)://([^/\s?#]+)([^\s]*)")
_SCHEMES = frozenset({"urn", "oid", "http", "https"})  # the start of a URN or URL cut short, not a namespace
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


def _bare_oid(authority: str) -> str:
    authority = authority.strip()
    return authority[len(_URN_OID) :] if authority.lower().startswith(_URN_OID) else authority


def authority_key(authority: str) -> str | None:
    """What an authority designates, for comparison; None when no message could carry it.

    An OID and `urn:oid:<OID>` are one key (`oid:<OID>`); a URL (a FHIR Identifier.system)
    compares without case in its scheme and host and without a trailing slash; a namespace id
    (HL7 HD.1, e.g. "CHU-X") compares without case. SPEC §4, §7.
    """
    text = authority.strip()
    if not text:
        return None
    bare = _bare_oid(text)
    if bare != text or _DOTTED.fullmatch(text):
        return f"oid:{bare}" if _OID.fullmatch(bare) else None
    url = _URL.fullmatch(text)
    if url is not None:
        scheme, host, path = url.groups()
        return f"url:{scheme.lower()}://{host.lower()}{path.rstrip('/')}"
    if _NAMESPACE.fullmatch(text) and text.casefold() not in _SCHEMES:
        return f"ns:{text.casefold()}"
    return None


def spellings(authority: str) -> tuple[str, ...]:
    """The ways one authority may be written down: an OID bare and as `urn:oid:`."""
    key = authority_key(authority)
    if key is not None and key.startswith("oid:"):
        return (key[4:], _URN_OID + key[4:])
    return (authority.strip(),)


def _oid_of(pid: PatientId) -> str:
    """The OID of an identifier's authority: its universal id (CX.4.2, a FHIR `urn:oid:` system),
    else its namespace or FHIR system when that is an OID, bare or as `urn:oid:` (engines put
    the INS OID in CX.4.1, or write a FHIR system `1.2.250.1.213.1.4.8` without its `urn:oid:`)."""
    if pid.authority_oid.strip():
        return _bare_oid(pid.authority_oid)
    key = authority_key(pid.authority)
    return key[4:] if key is not None and key.startswith("oid:") else ""


def matches(
    person_ids: Iterable[tuple[str, str]],
    alert_ids: Iterable[PatientId],
    *,
    ins_test_oids: bool,
) -> bool:
    """True when one of the person's (authority, value) pairs designates an alert identifier.

    `authority` is a namespace ("CHU-X"), an OID, `urn:oid:<OID>`, a URL, or "INS". It
    matches the identifier's namespace id or universal id when both designate the same
    authority (`authority_key`). "INS" matches an identifier whose universal id is the
    INS-NIR or INS-NIA OID, or one of the national test OIDs when `ins_test_oids`.
    An identifier under a test OID never matches in production, however the person's
    authority is spelled. An account or visit number (type AN, VN…) never matches: it
    designates a stay, and its value may be another person's IPP under the same authority.
    """
    accepted_ins = _INS_OIDS | _INS_TEST_OIDS if ins_test_oids else _INS_OIDS
    candidates = [
        pid
        for pid in alert_ids
        if pid.value.strip() and (ins_test_oids or _oid_of(pid) not in _INS_TEST_OIDS)
        and pid.type_code.strip().upper() not in _NOT_PERSON
    ]
    for authority, value in person_ids:
        authority, value = authority.strip(), value.strip()
        if not authority or not value:
            continue
        for pid in candidates:
            if pid.value.strip() != value:
                continue
            if authority.upper() == INS:
                if _oid_of(pid) in accepted_ins:
                    return True
                continue
            wanted = authority_key(authority)
            if wanted is not None and wanted in {authority_key(pid.authority), authority_key(pid.authority_oid)}:
                return True
    return False
