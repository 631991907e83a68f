"""The store behind the client's caches: one small interface, in-process by default.

Catalogs, records and verdict evidence are cached per hash of the API key; a shared store
(for replicas) implements the same ``get``/``set``, so the client never knows which it has.
"""
import threading
from typing import Any, Hashable

from cachetools import TTLCache

MISSING = object()


class MemoryCache:
    """A TTL cache shared by a process's threads; a TTL of 0 turns it off (nothing is kept)."""

    def __init__(self, maxsize: int, ttl: float) -> None:
        self._data = TTLCache(maxsize=maxsize, ttl=ttl) if ttl > 0 and maxsize > 0 else None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._data is not None

    def get(self, key: Hashable, default: Any = MISSING) -> Any:
        if self._data is None:
            return default
        with self._lock:
            return self._data.get(key, default)

    def set(self, key: Hashable, value: Any) -> None:
        if self._data is not None:
            with self._lock:
                self._data[key] = value

    def get_many(self, keys: list) -> dict:
        """key → value for the keys present."""
        if self._data is None:
            return {}
        with self._lock:
            return {key: self._data[key] for key in keys if key in self._data}

    def set_many(self, values: dict) -> None:
        if self._data is not None:
            with self._lock:
                self._data.update(values)
