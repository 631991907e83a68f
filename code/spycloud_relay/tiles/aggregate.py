"""The whole watchlist's exposure over a period, counted as records stream in.

One aggregate per API key and period serves every tile. Records are counted and let go: what
is kept grows with the accounts, sources, machines and days of the tenant, never with its
records. Pure: no I/O, no clock (the period is given).
"""

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from spycloud_relay.errors import RelayWarning
from spycloud_relay.spycloud.models import BreachRecord

SEVERITY_CLASSES = ('Low', 'Medium', 'High', 'Critical')
PERIODS = {
    'last_24_hours': timedelta(hours=24),
    'last_7_days': timedelta(days=7),
    'last_30_days': timedelta(days=30),
    'last_90_days': timedelta(days=90),
}
DEFAULT_PERIOD = 'last_7_days'


def severity_class(severity: int | None) -> str:
    """SpyCloud's scale as the sightings show it: 2 Low, 5 Medium, 20 High, 25+ Critical."""
    score = severity or 0
    if score <= 2:
        return 'Low'
    if score <= 5:
        return 'Medium'
    return 'High' if score < 25 else 'Critical'


@dataclass(frozen=True)
class Period:
    """A dashboard period: from ``start`` to ``end``, in day (or, past 60 days, week) bars."""

    name: str
    start: datetime
    end: datetime

    @classmethod
    def ending(cls, name: str, end: datetime) -> 'Period':
        return cls(name, end - PERIODS[name], end)

    @property
    def days(self) -> list[date]:
        """Every calendar day the period touches, oldest first: the slices to fetch."""
        first, last = self.start.date(), self.end.date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    @property
    def weekly(self) -> bool:
        return self.end - self.start > timedelta(days=60)

    def bucket(self, day: date) -> date:
        """The bar a day belongs to: itself, or the first day of its week of the period."""
        if not self.weekly:
            return day
        first = self.start.date()
        return first + timedelta(days=(day - first).days // 7 * 7)

    def buckets(self) -> list[date]:
        return list(dict.fromkeys(self.bucket(day) for day in self.days))


@dataclass
class Account:
    records: int = 0
    worst: int = 0
    newest: date = date.min
    sources: dict[int, int] = field(default_factory=dict)  # source id → records


@dataclass
class Source:
    records: int = 0
    newest: date = date.min


class Aggregate:
    """Counters of one period's records: thread-safe, as slices arrive at once."""

    def __init__(self, period: Period) -> None:
        self.period = period
        self.records = 0
        self.plaintext = 0
        self.machines: set[str] = set()
        self.accounts: dict[str, Account] = {}
        self.sources: dict[int, Source] = {}
        self.by_bucket: dict[date, dict[str, int]] = {
            b: dict.fromkeys(SEVERITY_CLASSES, 0) for b in period.buckets()
        }
        self.by_class: dict[str, dict[str, int]] = {
            c: {'corporate': 0, 'infected': 0} for c in SEVERITY_CLASSES
        }
        self.missing_days: list[date] = []
        self.warnings: list[RelayWarning] = []
        self._lock = threading.Lock()

    def add(self, record: BreachRecord, day: date) -> bool:
        """Count a record of the slice ``day``; one published on another day, or outside the
        period, belongs to another slice (or none) and is not counted here."""
        published = record.published
        if published.date() != day or not self.period.start <= published <= self.period.end:
            return False
        with self._lock:
            self._count(record, published.date())
        return True

    def _count(self, record: BreachRecord, day: date) -> None:
        severity, kind = record.severity or 0, severity_class(record.severity)
        machine = _identifier(record.get('infected_machine_id'))
        infected = severity >= 25 and machine is not None
        self.records += 1
        if infected:
            assert machine is not None  # infected means a machine named itself
            self.machines.add(machine)
        if _plaintext(record):
            self.plaintext += 1
        self.by_bucket[self.period.bucket(day)][kind] += 1
        self.by_class[kind]['infected' if infected else 'corporate'] += 1
        email = record.get('email')
        if isinstance(email, str) and '@' in email:
            account = self.accounts.setdefault(email.strip().lower(), Account())
            account.records += 1
            account.worst = max(account.worst, severity)
            account.newest = max(account.newest, day)
            if record.source_id is not None:
                account.sources[record.source_id] = account.sources.get(record.source_id, 0) + 1
        if record.source_id is not None:
            source = self.sources.setdefault(record.source_id, Source())
            source.records += 1
            source.newest = max(source.newest, day)

    def most_exposed(self, count: int = 10) -> list[tuple[str, Account]]:
        """(e-mail, Account) with the most records, the worst first among equals."""
        return sorted(
            self.accounts.items(), key=lambda item: (-item[1].records, -item[1].worst, item[0])
        )[:count]

    def newest_sources(self, count: int = 10) -> list[tuple[int, Source]]:
        """(source id, Source), the newest first, then the largest."""
        return sorted(
            self.sources.items(), key=lambda item: (item[1].newest, item[1].records), reverse=True
        )[:count]

    @property
    def complete(self) -> bool:
        return not self.missing_days

    def to_json(self) -> dict[str, Any]:
        """The counters as JSON-like data, for a store shared by replicas (a complete
        aggregate only: its warnings and missing days are not kept)."""
        period = self.period
        return {
            'period': [period.name, period.start.isoformat(), period.end.isoformat()],
            'records': self.records,
            'plaintext': self.plaintext,
            'machines': sorted(self.machines),
            'accounts': [
                [email, a.records, a.worst, a.newest.isoformat(), list(a.sources.items())]
                for email, a in self.accounts.items()
            ],
            'sources': [[i, s.records, s.newest.isoformat()] for i, s in self.sources.items()],
            'by_bucket': [[b.isoformat(), counts] for b, counts in self.by_bucket.items()],
            'by_class': self.by_class,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> 'Aggregate':
        name, start, end = data['period']
        aggregate = cls(Period(name, datetime.fromisoformat(start), datetime.fromisoformat(end)))
        aggregate.records, aggregate.plaintext = data['records'], data['plaintext']
        aggregate.machines = set(data['machines'])
        aggregate.accounts = {
            email: Account(records, worst, date.fromisoformat(newest), dict(sources))
            for email, records, worst, newest, sources in data['accounts']
        }
        aggregate.sources = {
            i: Source(records, date.fromisoformat(newest)) for i, records, newest in data['sources']
        }
        aggregate.by_bucket = {date.fromisoformat(b): counts for b, counts in data['by_bucket']}
        aggregate.by_class = data['by_class']
        return aggregate


def _identifier(value: object) -> str | None:
    """An id as text: a string as it is, a number as its digits; a list, an object or a
    boolean is no id (SpyCloud's fields are sparse and their types not guaranteed)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _plaintext(record: BreachRecord) -> bool:
    """Whether the record exposes a plaintext password: a password is a non-blank string."""
    kind = record.get('password_type')
    return _text(record.get('password_plaintext')) or (
        isinstance(kind, str) and kind.lower() == 'plaintext' and _text(record.get('password'))
    )


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def utc_now() -> datetime:
    return datetime.now(UTC)
