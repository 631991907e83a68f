"""The store behind the client's caches: in-process by default, Redis when REDIS_URL is set.

Both take the same calls (``get``/``set``/``get_many``/``set_many``, each with the tenant's
API key as ``secret``), so the client never knows which it has. The Redis store names and
seals every entry with keys derived from that secret (state.crypto), and keeps an in-process
twin, written with every value: when Redis does not answer, lookups go on from the twin.

Every in-process cache (the twin too) is bounded by bytes as well as by entries: an entry's
size is the length of its encoded form (state.codec, what Redis would hold), the least recently
used entries go past the bound, and an entry larger than the whole bound is not kept.
"""

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

import redis
from cachetools import TTLCache

from spycloud_relay.metrics import CACHE_BYTES, STATE_FALLBACKS
from spycloud_relay.state import codec
from spycloud_relay.state.crypto import TenantKeys, tenant_keys
from spycloud_relay.state.link import RedisLink, Unavailable

log = logging.getLogger(__name__)
MISSING = object()
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class Store(Protocol):
    """What the client needs of a cache; ``secret`` is the API key whose data it is."""

    @property
    def enabled(self) -> bool: ...

    def get(self, key: Hashable, default: Any = MISSING, *, secret: str | None = None) -> Any: ...

    def set(self, key: Hashable, value: Any, *, secret: str | None = None) -> None: ...

    def get_many(
        self, keys: Iterable[Hashable], *, secret: str | None = None
    ) -> dict[Hashable, Any]: ...

    def set_many(self, values: Mapping[Hashable, Any], *, secret: str | None = None) -> None: ...


class _Sized(NamedTuple):
    value: Any
    size: int


def _entry_size(entry: _Sized) -> int:
    return entry.size


def size_of(value: Any) -> int:
    """Bytes of the value's encoded form; its repr's length for a value the codec cannot write
    (a rough measure, for a value that only this process keeps)."""
    try:
        return len(codec.encode(value))
    except (TypeError, ValueError):
        return len(repr(value).encode('utf-8', 'replace'))


class _BoundedCache(TTLCache[Hashable, _Sized]):
    """A TTL cache evicting least recently used entries past ``maxsize`` bytes (the sizes the
    entries carry) or past ``max_entries`` entries."""

    def __init__(
        self, max_entries: int, max_bytes: int, ttl: float, timer: Callable[[], float]
    ) -> None:
        super().__init__(maxsize=max_bytes, ttl=ttl, timer=timer, getsizeof=_entry_size)
        self.max_entries = max_entries

    def __setitem__(self, key: Hashable, entry: _Sized) -> None:
        if entry.size > self.maxsize:  # could only evict everything and still not fit
            self.pop(key, None)
            return
        super().__setitem__(key, entry)
        while len(self) > self.max_entries:
            self.popitem()


class MemoryStore:
    """A TTL cache shared by a process's threads; a TTL of 0 turns it off (nothing is kept).
    ``secret`` is accepted and not needed: the process holds the API key anyway. ``name``
    labels the cache's bytes in the metrics; ``timer`` is the clock its TTL counts on (a test
    moves its own instead of waiting the TTL out)."""

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
        name: str = '',
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._data: _BoundedCache | None = (
            _BoundedCache(maxsize, max_bytes, ttl, timer) if ttl > 0 and maxsize > 0 else None
        )
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._data is not None

    @property
    def held_bytes(self) -> int:
        """The encoded size of what the cache holds now."""
        return 0 if self._data is None else int(self._data.currsize)

    def get(self, key: Hashable, default: Any = MISSING, *, secret: str | None = None) -> Any:
        if self._data is None:
            return default
        with self._lock:
            entry = self._data.get(key)
        return default if entry is None else entry.value

    def set(self, key: Hashable, value: Any, *, secret: str | None = None) -> None:
        self.set_many({key: value})

    def get_many(
        self, keys: Iterable[Hashable], *, secret: str | None = None
    ) -> dict[Hashable, Any]:
        """key → value for the keys present."""
        if self._data is None:
            return {}
        with self._lock:
            return {key: self._data[key].value for key in keys if key in self._data}

    def set_many(
        self,
        values: Mapping[Hashable, Any],
        *,
        secret: str | None = None,
        sizes: Mapping[Hashable, int] | None = None,
    ) -> None:
        """Keep the values; ``sizes`` (key → bytes) saves measuring those already encoded."""
        if self._data is None or not values:
            return
        sizes = sizes or {}
        entries = {
            key: _Sized(value, sizes[key] if key in sizes else size_of(value))
            for key, value in values.items()
        }
        with self._lock:
            for key, entry in entries.items():
                self._data[key] = entry
            held = self._data.currsize
        CACHE_BYTES.labels(self.name or 'other').set(held)


class RedisStore:
    """Entries shared by every worker and replica, each with the cache's TTL; what Redis
    cannot answer (an outage, a miss, a value that does not open) the in-process twin does.
    Without a ``secret`` nothing goes to Redis: no entry is ever stored unsealed."""

    def __init__(
        self,
        link: RedisLink,
        name: str,
        maxsize: int,
        ttl: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.name = name
        self._link = link
        self._local = MemoryStore(maxsize, ttl, max_bytes, name)
        self._ttl_ms = max(1, int(ttl * 1000))
        self._unstorable_logged = False

    @property
    def enabled(self) -> bool:
        return self._local.enabled

    @property
    def held_bytes(self) -> int:
        """The encoded size of what the in-process twin holds now."""
        return self._local.held_bytes

    def get(self, key: Hashable, default: Any = MISSING, *, secret: str | None = None) -> Any:
        return self.get_many([key], secret=secret).get(key, default)

    def set(self, key: Hashable, value: Any, *, secret: str | None = None) -> None:
        self.set_many({key: value}, secret=secret)

    def get_many(
        self, keys: Iterable[Hashable], *, secret: str | None = None
    ) -> dict[Hashable, Any]:
        """key → value for the keys present (in Redis, else in the twin)."""
        keys = list(keys)
        if not self.enabled or not secret or not keys:
            return self._local.get_many(keys)
        tenant = tenant_keys(secret)
        names = [tenant.name(self.name, key) for key in keys]
        try:
            sealed = self._link.call(lambda client: client.mget(names))
        except Unavailable:
            STATE_FALLBACKS.labels(self.name).inc()
            return self._local.get_many(keys)
        found = {}
        for key, name, value in zip(keys, names, sealed, strict=True):
            value = self._opened(tenant, name, value)
            if value is not MISSING:
                found[key] = value
        rest = [key for key in keys if key not in found]
        return {**self._local.get_many(rest), **found} if rest else found

    def set_many(self, values: Mapping[Hashable, Any], *, secret: str | None = None) -> None:
        if not self.enabled or not values:
            return
        encoded = self._encoded(values)
        self._local.set_many(values, sizes={key: len(data) for key, data in encoded.items()})
        if not secret or not encoded:
            return
        tenant = tenant_keys(secret)
        sealed = {
            name: tenant.seal(name, data)
            for name, data in ((tenant.name(self.name, key), data) for key, data in encoded.items())
        }

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for name, value in sealed.items():
                pipe.set(name, value, px=self._ttl_ms)
            pipe.execute()

        try:
            self._link.call(write)
        except Unavailable:
            STATE_FALLBACKS.labels(self.name).inc()

    def _encoded(self, values: Mapping[Hashable, Any]) -> dict[Hashable, bytes]:
        """key → encoded value; {} (the twin alone keeps them) for a value the codec cannot
        write, a defect said once in the log rather than a failed lookup."""
        try:
            return {key: codec.encode(value) for key, value in values.items()}
        except (TypeError, ValueError) as error:
            if not self._unstorable_logged:
                self._unstorable_logged = True
                log.error('the %s cache keeps a value in this process only: %s', self.name, error)
            return {}

    def _opened(self, tenant: TenantKeys, name: str, sealed: bytes | str | None) -> Any:
        if not isinstance(sealed, bytes):  # absent (None); str only with decode_responses
            return MISSING
        plaintext = tenant.open(name, sealed)
        if plaintext is None:
            log.debug('a %s entry in Redis does not open with this key: a miss', self.name)
            return MISSING
        try:
            return codec.decode(plaintext)
        except codec.Undecodable:
            return MISSING
