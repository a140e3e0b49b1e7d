"""The attribute every part of the store shares."""

from __future__ import annotations

from storage.backend import Backend


class StoreBase:
    db: Backend
