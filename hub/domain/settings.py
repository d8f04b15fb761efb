"""Care settings a person moves between (SPEC §1, §4 `!move`)."""

from __future__ import annotations

from enum import StrEnum


class Setting(StrEnum):
    HOME = "home"
    EMERGENCY = "emergency"
    HOSPITAL = "hospital"
    REHAB = "rehab"
    HAD = "had"
    TEMPORARY_STAY = "temporary_stay"
    DAY_CARE = "day_care"
    NURSING_HOME = "nursing_home"
    OTHER = "other"
