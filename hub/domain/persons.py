"""Persons followed (files): case reference, identifiers, lifecycle."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from hub.domain.errors import DomainError
from hub.domain.identity import authority_key
from hub.domain.settings import Setting

CASE_REF = re.compile(r"^R-\d{4}-\d{4,}$")
INS = "INS"  # authority label for an INS-NIR given with --ins
_VALUE = re.compile(r"[^\s|^~\\&:]{1,64}")  # no HL7 separator: no message could carry it
_NIR = re.compile(r"^[12378]\d{2}(0[1-9]|1[0-2]|[2-9]\d)(\d{2}|2A|2B)\d{6}\d{2}$")


@dataclass(frozen=True)
class Identifier:
    authority: str  # "INS", a namespace such as "CHU-X", an OID, urn:oid:<OID> or a URL
    value: str

    def label(self) -> str:
        return f"{self.authority}:{self.value}"


@dataclass(frozen=True)
class Person:
    case_ref: str
    display_name: str
    referent: str  # the case manager's Matrix id
    opened_at: datetime
    birth_date: date | None = None
    identifiers: tuple[Identifier, ...] = ()
    room_id: str | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    setting: Setting = Setting.HOME
    setting_since: datetime | None = None
    hospital_return: date | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


def case_ref(year: int, sequence: int) -> str:
    return f"R-{year:04d}-{sequence:04d}"


def parse_nir(text: str) -> str:
    """Validate an INS-NIR (15 characters, Corsica 2A/2B, key = 97 - number mod 97)."""
    nir = text.replace(" ", "").upper()
    if not _NIR.match(nir):
        raise DomainError("error.nir_format", value=text)
    number = int(nir[:13].replace("2A", "19").replace("2B", "18"))
    if 97 - number % 97 != int(nir[13:]):
        raise DomainError("error.nir_key", value=text)
    return nir


def parse_identifier(text: str) -> Identifier:
    """`<authority>:<id>`; the authority is everything before the LAST colon (SPEC §4): a
    namespace id (CHU-X), an OID, `urn:oid:<OID>` or a URL (a FHIR Identifier.system).

    An identifier no hospital message could ever carry is refused (DomainError
    `error.identifier_format`): an authority of none of those forms (a mistyped OID, another
    URN, a bare scheme), an empty value, or one with spaces or HL7 separators.
    """
    authority, sep, value = text.strip().rpartition(":")
    authority = authority.strip()
    if authority.lower().startswith("urn:oid:"):
        authority = "urn:oid:" + authority[len("urn:oid:") :]
    if sep and authority.upper() == INS:
        return Identifier(INS, parse_nir(value))
    if not sep or not _VALUE.fullmatch(value) or len(authority) > 255 or authority_key(authority) is None:
        raise DomainError("error.identifier_format", value=text)
    return Identifier(authority, value)


def identifier_key(ident: Identifier) -> tuple[str | None, str]:
    """What an identifier designates, however its authority is spelled (SPEC §4): `CHU-X` and
    `chu-x`, an OID bare or as `urn:oid:`, a URL with or without a trailing slash are one."""
    return (INS if ident.authority == INS else authority_key(ident.authority)), ident.value



def check_new_identifiers(existing: tuple[Identifier, ...], new: tuple[Identifier, ...]) -> None:
    """Refuses an identifier given twice, however its authority is spelled."""
    seen = {identifier_key(i) for i in existing}
    for ident in new:
        if identifier_key(ident) in seen:
            raise DomainError("error.identifier_duplicate", value=ident.label())
        seen.add(identifier_key(ident))


def check_display_name(name: str) -> str:
    """The name as shown, spaces collapsed; DomainError("error.display_name") when it is empty,
    longer than 120 characters, or has no letter at all (`!nouveau ?` asks for help, it does not
    open a file named "?")."""
    name = " ".join(name.split())
    if not name or len(name) > 120 or not any(char.isalpha() for char in name):
        raise DomainError("error.display_name")
    return name


def check_birth_date(born: date | None, today: date) -> date | None:
    if born is not None and (born > today or born.year < 1900):
        raise DomainError("error.birth_date", value=born.isoformat())
    return born
