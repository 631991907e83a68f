"""One gathering of the dashboard at a time per key and period, across the deployment.

XDR asks for a dashboard's five tiles at once, and a deployment has many workers: each tile
gathering the period on its own multiplied the SpyCloud calls, crowded the key's rate budget,
and every tile came back partial. So a gathering holds a lease on its key and period
(state/lease.py: in-process, or in Redis with REDIS_URL), and a request that finds the lease
held waits for the holder's result instead of gathering: the cached aggregate when it was
complete, else the holder's outcome (a partial picture, or its error), kept a short while under
the lease's token for the waiters of that lease only. Waiting polls on the request's own thread
(a greenlet under gunicorn): it takes nothing from the pool the holder gathers on, and ends at
the request's deadline. A holder that dies frees the lease after TILE_LEASE_TTL_S.
"""

import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from spycloud_relay import state
from spycloud_relay.config import Settings
from spycloud_relay.errors import RelayError, RelayWarning
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.state import MISSING

T = TypeVar('T')
POLL_S = 0.05  # between two looks of a waiter at the lease, the cache and the outcome


class OneAtATime(Generic[T]):
    """Runs ``gather`` once per key at a time; the others asking meanwhile get its result.
    ``pack``/``unpack`` turn a result into what a store keeps (state/codec.py) and back."""

    def __init__(
        self,
        settings: Settings,
        pack: Callable[[T], Any],
        unpack: Callable[[Any], T],
        poll_s: float = POLL_S,
    ) -> None:
        ttl = settings.tile_lease_ttl_s
        self._leases = state.leases(settings, 'gatherings', ttl)
        # The holders' last outcomes, kept as long as a lease lasts: long enough for waiters.
        self._outcomes = state.cache(settings, 'gatherings', settings.tile_cache_size, ttl)
        self._pack, self._unpack = pack, unpack
        self._poll_s = poll_s

    def run(
        self, lookup: Lookup, key: Hashable, cached: Callable[[], T | None], gather: Callable[[], T]
    ) -> T:
        """``cached()`` when it has the result; else ``gather()`` under the key's lease, or the
        result of the request holding it. Raises the holder's RelayError, or a ``deadline
        exceeded`` error when the deadline comes before the holder's result."""
        while True:
            found = cached()
            if found is not None:
                return found
            token = self._leases.acquire(key, secret=lookup.api_key)
            if token is not None:
                return self._held(lookup, key, token, gather)
            found = self._awaited(lookup, key, cached)
            if found is not None:
                return found

    def _held(self, lookup: Lookup, key: Hashable, token: str, gather: Callable[[], T]) -> T:
        """``gather()``, its outcome kept for the waiters, then the lease given back."""
        try:
            result = gather()
        except RelayError as error:
            self._keep(lookup, key, token, {'error': [error.type, error.code, error.message]})
            raise
        else:
            self._keep(lookup, key, token, {'result': self._pack(result)})
            return result
        finally:
            self._leases.release(key, token, secret=lookup.api_key)

    def _keep(self, lookup: Lookup, key: Hashable, token: str, outcome: dict[str, Any]) -> None:
        self._outcomes.set(('outcome', key, token), outcome, secret=lookup.api_key)

    def _awaited(self, lookup: Lookup, key: Hashable, cached: Callable[[], T | None]) -> T | None:
        """The result of the lease's holder; None once the lease is free with no result (its
        holder failed, or died and the lease expired): the caller then gathers itself."""
        seen: str | None = None
        while True:
            holder = self._leases.holder(key, secret=lookup.api_key)
            found = cached()
            if found is not None:
                return found
            found = self._outcome(lookup, key, holder or seen)
            if found is not None:
                return found
            if holder is None:
                return None
            seen = holder
            if lookup.deadline.expired:
                raise _waited_too_long(lookup)
            time.sleep(lookup.deadline.cap(self._poll_s))

    def _outcome(self, lookup: Lookup, key: Hashable, token: str | None) -> T | None:
        """The outcome the holder ``token`` left: its result, or its error raised here."""
        if token is None:
            return None
        outcome = self._outcomes.get(('outcome', key, token), secret=lookup.api_key)
        if outcome is MISSING:
            return None
        if 'error' in outcome:
            raise _rebuilt(*outcome['error'])
        lookup.stats.add(cache_hits=1)
        return self._unpack(outcome['result'])


def _rebuilt(kind: str, code: str, message: str) -> RelayError:
    """The holder's error, as the waiter answers it (the same envelope entry)."""
    if kind == RelayWarning.type:
        return RelayWarning(code, message)
    error = RelayError(message)
    error.code = code
    return error


def _waited_too_long(lookup: Lookup) -> RelayError:
    """What answers a waiter whose deadline came before the gathering it waited for ended."""
    error = RelayError(
        f'The lookup deadline ({lookup.deadline.seconds:g} s) passed while another request '
        'gathered this period of the dashboard; ask again in a moment.'
    )
    error.code = 'deadline exceeded'
    return error
