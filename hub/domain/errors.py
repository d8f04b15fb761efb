"""Domain errors carry a catalog key and parameters: what the user must read, in any language."""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params
