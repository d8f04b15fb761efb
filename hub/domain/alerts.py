"""What a hospital told us about a followed person: the pure result of HL7 v2 or FHIR parsing.

An Alert keeps only what matching and the notice need: no names, no birth dates, no
clinical text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from hub.domain.identity import PatientId, matches

__all__ = ["Alert", "AlertEvent", "AlertRecord", "AlertSource", "MessageRefused", "PatientId", "matches"]

AlertSource = Literal["hl7", "fhir"]


class MessageRefused(Exception):
    """A hospital message its parser answers with a refusal (HL7 AE/AR, an ACK, an event not acted
    on, a FHIR error): what the message says or what this hub takes, so the same bytes are refused
    at every try. Any other failure of a parser (a fault, memory short) is not a refusal."""


class AlertEvent(StrEnum):
    admission = "admission"
    transfer = "transfer"
    discharge = "discharge"
    cancel_admission = "cancel_admission"
    cancel_transfer = "cancel_transfer"
    cancel_discharge = "cancel_discharge"
    cancel_leave = "cancel_leave"
    cancel_leave_return = "cancel_leave_return"
    leave = "leave"
    leave_return = "leave_return"
    update = "update"
    merge = "merge"


@dataclass(frozen=True)
class Alert:
    source: AlertSource
    sender: str  # "MSH-3^MSH-4" namespace ids, or MessageHeader.source endpoint/name
    control_id: str  # MSH-10, or Bundle.id / MessageHeader.id
    event: AlertEvent
    trigger: str  # "A01", "notification-admit", …
    event_time: datetime  # always timezone-aware
    identifiers: tuple[PatientId, ...]
    facility: str = ""  # where the event happened, as the message gives it ("" when absent)
    unit: str = ""
    sender_facility: str = ""  # MSH-4 / MessageHeader.sender: shown when `facility` is absent, never compared
    patient_class: str = ""  # PV1-2 (I, O, E, P…) or Encounter.class code
    discharge_disposition: str = ""  # PV1-36 or hospitalization.dischargeDisposition code
    discharge_destination: str = ""  # PV1-37 or hospitalization.destination display
    movement_id: str = ""  # ZBE-1 (IHE PAM France)
    movement_action: str = ""  # ZBE-4: INSERT, UPDATE or CANCEL
    gp_rpps: str = ""  # RPPS id of the ROL with role ODRP (médecin traitant)
    merged_identifiers: tuple[PatientId, ...] = ()  # MRG-1 of an A40 (every MRG of the message)
    #: (old, new) per MRG-1 identifier: the PID-3 identifier of the same authority in the PID the
    #: MRG belongs to (an A40 may carry several PID/MRG pairs, one per merged patient)
    merges: tuple[tuple[PatientId, PatientId], ...] = ()
    prior_unit: str = ""  # PV1-6.1, transfers only
    prior_facility: str = ""  # PV1-6.4, transfers only
    unreadable: bool = False  # a value held an HL7 escape that could not be decoded (shown as "?")
    #: the sender gave only the day (or a coarser span) of the event: the notice shows its date
    #: (`event_time` is then a point of that span that keeps the stay's order: hl7v2._event_time)
    day_only: bool = False

    def __post_init__(self) -> None:
        if self.event_time.tzinfo is None or self.event_time.utcoffset() is None:
            raise ValueError("Alert.event_time must be timezone-aware")


@dataclass(frozen=True)
class AlertRecord:
    """An alert as kept for a followed person: enough to cancel it or to order later ones."""

    id: int
    case_ref: str
    event: AlertEvent
    event_time: datetime
    sender: str = ""
    facility: str = ""
    unit: str = ""
    movement_id: str = ""
    notice_key: str | None = None  # outbox key of the notice it posted (None: silent)
    cancelled: bool = False
    cancelled_by: int | None = None  # the alert that cancelled it (itself: a cancellation row)
