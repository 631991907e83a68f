"""A period's watchlist records gathered in windows sized by the data, not the calendar.

A cursor chain is sequential and SpyCloud's gateway answers 504 to a query too large for it,
so the period is asked as a few large windows at once (each on the request's own pool), each
following its cursor. A window SpyCloud answers with 504 is asked again in halves, down to a
day (a day's 504 is retried as any call, then the day is missing); a window that pages beyond
a bound is stopped and the part it has not finished asked in halves. Windows may overlap (a
date-only ``until`` takes in the next day, a re-asked part its oldest day again): the
gathering counts each record once, on its own publish day. The size that worked is kept per
API key (``WindowSizes``), so the next gathering starts there.
"""

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from spycloud_relay import state
from spycloud_relay.config import Settings
from spycloud_relay.errors import RelayError
from spycloud_relay.spycloud.client import SpyCloudClient
from spycloud_relay.spycloud.failures import GatewayTimeout
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import BreachRecord
from spycloud_relay.spycloud.watchlist_records import Paged
from spycloud_relay.tiles.aggregate import Aggregate

# How long a key's window size is remembered: a day, then the gathering starts large again.
SIZE_MEMORY_TTL_S = 86400.0
SIZE_MEMORY_ENTRIES = 10000

# A day that did not arrive, and why.
Failure = tuple[date, RelayError]


@dataclass(frozen=True)
class Window:
    """The days from ``first`` to ``last``, both included."""

    first: date
    last: date

    @property
    def length(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.length)]

    def halves(self) -> tuple['Window', 'Window']:
        """The older and the newer half (the older one a day longer when the length is odd)."""
        older = (self.length + 1) // 2
        middle = self.first + timedelta(days=older)
        return Window(self.first, middle - timedelta(days=1)), Window(middle, self.last)

    def __str__(self) -> str:
        if self.first == self.last:
            return f'the watchlist records of {self.first}'
        return f'the watchlist records of {self.first} to {self.last}'


def windows(days: Sequence[date], size: int) -> list[Window]:
    """The days (consecutive, oldest first) as the fewest windows of at most ``size`` days,
    of lengths differing by one at most: 91 days in 30-day windows are 23, 23, 23 and 22."""
    count = -(-len(days) // max(1, size))
    base, longer = divmod(len(days), count)
    found, start = [], 0
    for index in range(count):
        length = base + (1 if index < longer else 0)
        found.append(Window(days[start], days[start + length - 1]))
        start += length
    return found


def unfinished(window: Window, paged: Paged) -> Window:
    """What of a window stopped at the page bound is asked again: with its pages newest first
    (SpyCloud's documented order), its days up to the oldest day read (what of that day
    arrived is counted once anyway); in any other order, all of it."""
    if not paged.newest_first or paged.oldest is None:
        return window
    return Window(window.first, min(max(paged.oldest, window.first), window.last))


def next_size(started: int, largest: int, bounded: bool, ceiling: int | None = None) -> int:
    """The window size the key's next gathering starts with: a day shorter than the shortest
    window SpyCloud timed out on (``ceiling``, remembered a day) when one did; after a window
    stopped at the page bound, the same size; after a gathering that needed no split, twice
    the size, up to ``largest`` and below the ceiling. Growing never reaches a size known to
    time out, so a gathering does not pay the same 504s every other time."""
    below = largest if ceiling is None else max(1, min(largest, ceiling - 1))
    if bounded:
        return min(started, below)
    return min(below, started * 2)


def failed_days(asked: Sequence[Window], results: Sequence[object]) -> list[Failure]:
    """Each window's failed days: all of them when the window's task raised (a RelayError
    stands for it), else the days it reported."""
    failures: list[Failure] = []
    for window, result in zip(asked, results, strict=True):
        if isinstance(result, RelayError):
            failures.extend((day, result) for day in window.days)
        elif isinstance(result, list):
            failures.extend(result)
    return failures


class Gathering:
    """One gathering's windows: the records they share (each counted once, thread-safe), and
    what was learnt of the window size."""

    def __init__(self, client: SpyCloudClient, aggregate: Aggregate, max_pages: int) -> None:
        self._client, self._aggregate, self._max_pages = client, aggregate, max_pages
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.bounded = False
        self.smallest: int | None = None  # the shortest window answered
        self.timed_out: int | None = None  # the shortest window answered with a 504

    def period(self, lookup: Lookup, asked: Sequence[Window]) -> list[Failure]:
        """The days of ``asked`` that did not arrive, with why; the others are counted."""
        results = self._client.each(lookup, asked, self.window, describe=str)
        return sorted(failed_days(asked, results), key=lambda failure: failure[0])

    def window(self, lookup: Lookup, window: Window) -> list[Failure]:
        """Ask a window; split it where SpyCloud cannot answer it whole (504, the page bound).
        Raises what failed the window itself (its days are then missing)."""
        if window.length == 1:
            self._client.watchlist_day(lookup, window.first, lambda record, _: self.take(record))
            self._answered(1)
            return []
        try:
            paged = self._client.watchlist_window(
                lookup, (window.first, window.last), self.take, self._max_pages
            )
        except GatewayTimeout:
            with self._lock:
                self.timed_out = min(self.timed_out or window.length, window.length)
            return self._split(lookup, window)
        if not paged.complete:
            self.bounded = True
            return self._split(lookup, unfinished(window, paged))
        self._answered(window.length)
        return []

    def take(self, record: BreachRecord) -> None:
        """Count a record once, on its own publish day (the aggregate drops one outside the
        period), whichever window brought it."""
        with self._lock:
            if record.document_id in self._seen:
                return
            self._seen.add(record.document_id)
        self._aggregate.add(record, record.published.date())

    def _split(self, lookup: Lookup, window: Window) -> list[Failure]:
        pieces = window.halves() if window.length > 1 else (window,)
        results = self._client.each(lookup, pieces, self.window, describe=str)
        return failed_days(pieces, results)

    def _answered(self, length: int) -> None:
        with self._lock:
            self.smallest = length if self.smallest is None else min(self.smallest, length)


class WindowSizes:
    """The window size that last worked, and the shortest that timed out (for a day), per API
    key: in-process, or in Redis when REDIS_URL is set (keyed by the key's fingerprint and
    sealed under it, as the other caches)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.largest = settings.watchlist_window_days
        self._store = state.cache(settings, 'windows', SIZE_MEMORY_ENTRIES, SIZE_MEMORY_TTL_S)
        self._clock = clock

    def start(self, lookup: Lookup) -> int:
        """The size to start with: the one remembered, else WATCHLIST_WINDOW_DAYS."""
        size = self._remembered(lookup).get('size')
        if not isinstance(size, int) or not 1 <= size <= self.largest:
            return self.largest
        return size

    def learn(self, lookup: Lookup, started: int, gathering: Gathering) -> None:
        """Remember the size the next gathering starts with, and the ceiling a 504 set
        (nothing when no window was answered: nothing was learnt)."""
        if gathering.smallest is None and gathering.timed_out is None:
            return
        memory = self._ceiling(self._remembered(lookup), gathering.timed_out)
        ceiling = memory.get('ceiling')
        size = next_size(started, self.largest, gathering.bounded, ceiling)
        if gathering.timed_out is not None and isinstance(ceiling, int):
            size = max(1, min(self.largest, ceiling - 1))
        self._store.set(
            ('windows', lookup.fingerprint), {**memory, 'size': size}, secret=lookup.api_key
        )

    def _remembered(self, lookup: Lookup) -> dict[str, Any]:
        found = self._store.get(('windows', lookup.fingerprint), secret=lookup.api_key)
        return dict(found) if isinstance(found, Mapping) else {}

    def _ceiling(self, memory: dict[str, Any], timed_out: int | None) -> dict[str, Any]:
        """The memory with its ceiling: lowered by this gathering's 504, forgotten a day
        after it was set (SpyCloud's gateway may answer larger windows again)."""
        now, ceiling, since = self._clock(), memory.get('ceiling'), memory.get('ceiling_at')
        if not isinstance(ceiling, int) or not isinstance(since, (int, float)):
            ceiling = None
        elif now - since > SIZE_MEMORY_TTL_S:
            ceiling = None
        if timed_out is not None and (ceiling is None or timed_out < ceiling):
            return {'ceiling': timed_out, 'ceiling_at': now}
        if ceiling is None:
            return {}
        return {'ceiling': ceiling, 'ceiling_at': since}
