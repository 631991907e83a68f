"""Leases: one holder at a time of a name, across a process or, with Redis, the deployment.

A lease is taken without waiting (``acquire`` returns a token, or None when another holds it),
given back only by its holder (``release`` with that token: compare-and-delete) and lost by a
holder that dies: it expires after its TTL, unless its holder ``renew``s it in time (a holder
that works longer than the TTL keeps it). ``holder`` says who holds a name now. The dashboard
uses one per key and period so that one gathering runs at a time (tiles/single.py); the sync one
per tenant (sync/checkpoint.py).

Like the stores (state/store.py), the Redis leases name each lease with the keys derived from
the tenant's API key, and fall back to their in-process twin while Redis does not answer.
"""

import secrets
import threading
import time
from collections.abc import Callable, Hashable
from typing import Protocol

import redis

from spycloud_relay.metrics import STATE_FALLBACKS
from spycloud_relay.state.crypto import tenant_keys
from spycloud_relay.state.link import RedisLink, Unavailable


class Leases(Protocol):
    """What a caller needs of leases; ``secret`` is the API key whose work it is."""

    def acquire(self, key: Hashable, *, secret: str | None = None) -> str | None: ...

    def release(self, key: Hashable, token: str, *, secret: str | None = None) -> None: ...

    def renew(self, key: Hashable, token: str, *, secret: str | None = None) -> bool: ...

    def holder(self, key: Hashable, *, secret: str | None = None) -> str | None: ...


def _token() -> str:
    return secrets.token_hex(16)


class MemoryLeases:
    """Leases of this process's threads (and greenlets): a dict of (token, expiry) under a
    lock. ``clock`` is what the TTL counts on (a test moves its own)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._held: dict[Hashable, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: Hashable, *, secret: str | None = None) -> str | None:
        """A new token when nobody holds ``key`` (or its lease expired), else None."""
        with self._lock:
            if self._live(key) is not None:
                return None
            token = _token()
            self._held[key] = (token, self._clock() + self.ttl)
            return token

    def release(self, key: Hashable, token: str, *, secret: str | None = None) -> None:
        """Give the lease back, if ``token`` still holds it (not once it expired and was
        taken by another)."""
        with self._lock:
            if self._live(key) == token:
                del self._held[key]

    def renew(self, key: Hashable, token: str, *, secret: str | None = None) -> bool:
        """A full TTL again from now, if ``token`` still holds ``key``; False when it lost it."""
        with self._lock:
            if self._live(key) != token:
                return False
            self._held[key] = (token, self._clock() + self.ttl)
            return True

    def holder(self, key: Hashable, *, secret: str | None = None) -> str | None:
        with self._lock:
            return self._live(key)

    def _live(self, key: Hashable) -> str | None:
        """The token holding ``key`` now; an expired lease is dropped (call under the lock)."""
        held = self._held.get(key)
        if held is None:
            return None
        if held[1] <= self._clock():
            del self._held[key]
            return None
        return held[0]


# KEYS[1]: the lease; ARGV[1]: the token that would give it back. Deletes it only when that
# token still holds it, atomically (a lease that expired and was taken again stays).
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1]: the lease; ARGV[1]: the holder's token; ARGV[2]: the TTL in ms. Sets the TTL again
# only while that token holds it (a lease that expired and was taken by another stays its).
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class RedisLeases:
    """Leases of the whole deployment: SET NX PX on a name derived from the tenant's key,
    under ``relay:<namespace>:``. While Redis does not answer (or without a ``secret``), the
    in-process twin decides: each process then runs its own gatherings, as without Redis.
    ``strict`` leases have no twin: Unavailable reaches the caller (the sync, which must not
    run twice across replicas, stops instead)."""

    def __init__(
        self, link: RedisLink, namespace: str, ttl: float, *, strict: bool = False
    ) -> None:
        self.namespace = namespace
        self.strict = strict
        self._link = link
        self._local = MemoryLeases(ttl)
        self._ttl_ms = max(1, int(ttl * 1000))
        self._release = link.client.register_script(RELEASE_SCRIPT)
        self._renew = link.client.register_script(RENEW_SCRIPT)

    def acquire(self, key: Hashable, *, secret: str | None = None) -> str | None:
        if not secret:
            return self._local.acquire(key)
        token, name = _token(), self._name(key, secret)
        try:
            taken = self._link.call(lambda c: c.set(name, token, nx=True, px=self._ttl_ms))
        except Unavailable:
            self._fell_back()
            return self._local.acquire(key)
        return token if taken else None

    def renew(self, key: Hashable, token: str, *, secret: str | None = None) -> bool:
        """A full TTL again, if ``token`` still holds ``key``. False when it lost it, and
        while Redis does not answer (whether it still holds it is unknown)."""
        if not secret or self._local.holder(key) == token:  # taken during an outage
            return self._local.renew(key, token)
        name = self._name(key, secret)

        def renew(client: redis.Redis) -> object:
            return self._renew(keys=[name], args=[token, self._ttl_ms], client=client)

        try:
            return bool(self._link.call(renew))
        except Unavailable:
            self._fell_back()
            return False

    def release(self, key: Hashable, token: str, *, secret: str | None = None) -> None:
        self._local.release(key, token)  # a lease taken during an outage
        if not secret:
            return
        name = self._name(key, secret)

        def release(client: redis.Redis) -> None:
            self._release(keys=[name], args=[token], client=client)

        try:
            self._link.call(release)
        except Unavailable:
            STATE_FALLBACKS.labels(self.namespace).inc()  # its TTL frees it

    def holder(self, key: Hashable, *, secret: str | None = None) -> str | None:
        if not secret:
            return self._local.holder(key)
        name = self._name(key, secret)
        try:
            token = self._link.call(lambda client: client.get(name))
        except Unavailable:
            self._fell_back()
            return self._local.holder(key)
        return token.decode('ascii', 'replace') if isinstance(token, bytes) else None

    def _fell_back(self) -> None:
        """Count the operation the in-process twin answers; a strict lease has none: raise."""
        STATE_FALLBACKS.labels(self.namespace).inc()
        if self.strict:
            raise Unavailable()

    def _name(self, key: Hashable, secret: str) -> str:
        return tenant_keys(secret).name(self.namespace, key)
