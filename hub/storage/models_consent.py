"""Models for the person's consent and the clinical concertations."""

from __future__ import annotations
