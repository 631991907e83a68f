"""Gathering the dashboard's aggregate: the one place tiles meet the SpyCloud client.

The period is asked in a few large windows at once, split where SpyCloud cannot answer one
whole (tiles/windows.py), within the rate limiter and the deadline; records stream into the
aggregate's counters. The aggregate is cached per API key and period (TILE_CACHE_TTL_S), so
every tile of a dashboard costs one gathering.
One gathering runs per key and period at a time (tiles/single.py): the tiles asked
meanwhile wait for its result.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from spycloud_relay import state
from spycloud_relay.config import Settings
from spycloud_relay.errors import AuthorizationError, RelayError, RelayWarning
from spycloud_relay.spycloud.client import SpyCloudClient
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import Catalog
from spycloud_relay.state import MISSING
from spycloud_relay.tiles.aggregate import Aggregate, Period, utc_now
from spycloud_relay.tiles.single import OneAtATime
from spycloud_relay.tiles.windows import Gathering, WindowSizes, windows


@dataclass(frozen=True)
class Gathered:
    aggregate: Aggregate
    catalogs: dict[int, Catalog]
    computed_at: datetime


class Dashboard:
    """Aggregates of the watchlist per key and period, gathered once and kept a while."""

    def __init__(self, client: SpyCloudClient, settings: Settings) -> None:
        self._client = client
        self.ttl_s = settings.tile_cache_ttl_s
        self._sizes = WindowSizes(settings)
        self._max_pages = settings.watchlist_window_pages
        # Shared by every replica when REDIS_URL is set, encrypted under the tenant's key.
        self._cache = state.cache(
            settings, 'tiles', settings.tile_cache_size, settings.tile_cache_ttl_s
        )
        self._single = OneAtATime(settings, _shared, _from_shared)

    def gathered(self, lookup: Lookup, period_name: str) -> Gathered:
        """The period's aggregate and the catalogs its tiles name; raises the RelayError of a
        SpyCloud that refused the key (403: no licence, IP not allowed) or answered nothing.
        One gathering runs per key and period; others asking meanwhile get its result."""
        key = ('tiles', lookup.fingerprint, period_name)
        return self._single.run(
            lookup,
            key,
            lambda: self._cached(lookup, key),
            lambda: self._gathered_now(lookup, key, period_name),
        )

    def _cached(self, lookup: Lookup, key: tuple[str, ...]) -> Gathered | None:
        cached = self._cache.get(key, secret=lookup.api_key)
        if cached is MISSING:
            return None
        lookup.stats.add(cache_hits=1)
        return _unpacked(cached)

    def _gathered_now(self, lookup: Lookup, key: tuple[str, ...], period_name: str) -> Gathered:
        now = utc_now()
        aggregate = Aggregate(Period.ending(period_name, now))
        self._gather(lookup, aggregate)
        catalogs, _ = self._client.catalogs(lookup, _named_sources(aggregate))
        gathered = Gathered(aggregate, catalogs, now)
        if aggregate.complete:  # a partial picture is not kept: the next ask may complete it
            self._cache.set(key, _packed(gathered), secret=lookup.api_key)
        return gathered

    def _gather(self, lookup: Lookup, aggregate: Aggregate) -> None:
        days = aggregate.period.days
        size = self._sizes.start(lookup)
        gathering = Gathering(self._client, aggregate, self._max_pages)
        failures = gathering.period(lookup, windows(days, size))
        self._sizes.learn(lookup, size, gathering)
        for _, error in failures:
            if isinstance(error, AuthorizationError):
                raise error
        if failures and len(failures) == len(days):
            raise _nothing_arrived(failures[0][1], len(days))
        aggregate.missing_days.extend(day for day, _ in failures)
        if failures:
            reasons = sorted({error.message for _, error in failures})
            aggregate.warnings.append(
                RelayWarning(
                    'incomplete',
                    f'The records of {len(failures)} of {len(days)} days of the period did '
                    f'not arrive ({"; ".join(reasons)[:300]}); the tiles show the days that did.',
                )
            )


def _nothing_arrived(error: RelayError, days: int) -> RelayError:
    """What answers a period of which no day arrived: no count can be shown (zeros would read
    as no exposure). A day's warning (SpyCloud's 400, the deadline) is made fatal."""
    if not error.is_warning:
        return error
    fatal = RelayError(
        f'SpyCloud gave the records of none of the {days} days of the period: {error.message}'
    )
    fatal.code = error.code
    return fatal


def _named_sources(aggregate: Aggregate) -> list[int]:
    """The breach sources the markdown tiles name, whose titles come from the catalogs."""
    ids = [source_id for source_id, _ in aggregate.newest_sources()]
    for _, account in aggregate.most_exposed():
        ids.extend(sorted(account.sources, key=lambda s: -account.sources[s])[:3])
    return list(dict.fromkeys(ids))


def _packed(gathered: Gathered) -> dict[str, Any]:
    """What the store keeps: JSON-like data and Catalogs, which its codec knows."""
    return {
        'aggregate': gathered.aggregate.to_json(),
        'catalogs': dict(gathered.catalogs),
        'computed_at': gathered.computed_at.isoformat(),
    }


def _unpacked(packed: Mapping[str, Any]) -> Gathered:
    return Gathered(
        Aggregate.from_json(packed['aggregate']),
        packed['catalogs'],
        datetime.fromisoformat(packed['computed_at']),
    )


def _shared(gathered: Gathered) -> dict[str, Any]:
    """What waiters of a gathering get (tiles/single.py): a partial picture too, with its
    missing days and warnings."""
    aggregate = gathered.aggregate
    return {
        **_packed(gathered),
        'missing_days': [day.isoformat() for day in aggregate.missing_days],
        'warnings': [[warning.code, warning.message] for warning in aggregate.warnings],
    }


def _from_shared(packed: Mapping[str, Any]) -> Gathered:
    gathered = _unpacked(packed)
    aggregate = gathered.aggregate
    aggregate.missing_days.extend(date.fromisoformat(day) for day in packed['missing_days'])
    aggregate.warnings.extend(RelayWarning(code, message) for code, message in packed['warnings'])
    return gathered
