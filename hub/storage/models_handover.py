"""Models for handovers, continuity breaks and file closure."""

from __future__ import annotations
