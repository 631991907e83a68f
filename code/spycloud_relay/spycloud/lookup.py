"""One request's business with SpyCloud, decided once by the route or the CLI and passed down.

requests' ``Session`` holds the defaults each call merges; here the client holds the
process-wide ones (pool, caches, limiter) and a ``Lookup`` the request's own: whose key, how
many records, which filters, until when, and the tally of what it spent.
"""

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from types import MappingProxyType

from spycloud_relay.deadline import Deadline
from spycloud_relay.spycloud.models import BreachRecord, severities_from

UNSENDABLE_KEY = (
    'the SpyCloud API key in the module settings holds a line break or another '
    'character an HTTP header cannot carry; paste it again as one line'
)


def sendable_key(api_key: str) -> bool:
    """A key that fits in a header: printable Latin-1, no line break (a wrapped paste would
    otherwise make the HTTP library raise an error that quotes the key)."""
    return bool(api_key) and all(' ' <= char <= '\xff' and char != '\x7f' for char in api_key)


def key_fingerprint(api_key: str) -> str:
    """Caches and buckets are keyed by a hash of the API key, never the key itself."""
    return hashlib.sha256(api_key.encode('utf-8')).hexdigest()[:32]


class LookupStats:
    """What one request spent at SpyCloud, for its log line: calls, retries, cache hits."""

    FIELDS = ('spycloud_calls', 'retries', 'cache_hits', 'cache_misses', 'limiter_wait_s')

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spycloud_calls = self.retries = self.cache_hits = self.cache_misses = 0
        self.limiter_wait_s = 0.0

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return {
                name: round(getattr(self, name), 4) if name.endswith('_s') else getattr(self, name)
                for name in self.FIELDS
            }


@dataclass(frozen=True)
class VerdictRule:
    """An account is suspicious when SpyCloud holds a record of it at or above
    ``min_severity`` published in the last ``days`` days (the window starts at midnight UTC
    ``days`` days before today, as SpyCloud's ``since`` does)."""

    min_severity: int = 20
    days: int = 90
    today: date = field(default_factory=lambda: date.today())

    @cached_property
    def since(self) -> date:
        return self.today - timedelta(days=self.days)

    @cached_property
    def filters(self) -> Mapping[str, str]:
        """The query that asks SpyCloud for qualifying records only (worked out once: every
        account of a request is asked with it)."""
        return MappingProxyType(
            {'severity': severities_from(self.min_severity), 'since': self.since.isoformat()}
        )

    def qualifies(self, record: BreachRecord) -> bool:
        return (record.severity or 0) >= self.min_severity and record.published.date() >= self.since


@dataclass(frozen=True)
class Lookup:
    """The request's key, record limit, filters (``severity``, ``since``), deadline and stats,
    and the verdict rule when the request wants verdicts."""

    api_key: str
    deadline: Deadline
    limit: int = 100
    filters: Mapping[str, str] = field(default_factory=dict)
    verdicts: VerdictRule | None = None
    stats: LookupStats = field(default_factory=LookupStats, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'filters', MappingProxyType(dict(self.filters)))

    @cached_property
    def key_sendable(self) -> bool:
        """``sendable_key`` of the key, checked once per request rather than on every call."""
        return sendable_key(self.api_key)

    @cached_property
    def fingerprint(self) -> str:
        """The key's hash, worked out once per request rather than on every call."""
        return key_fingerprint(self.api_key)
