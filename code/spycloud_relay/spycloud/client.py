"""The SpyCloud Enterprise API v2 client: what an observable's exposure is, fast.

The one object the routes, the CLI and the tiles hold: process-wide (transport, caches, rate
budget, what e-mail batching has learnt), while each call takes the ``Lookup`` of its
request. It only assembles the parts, each a module of its own idea:

- spycloud/records.py: an observable's breach records, page by page, and the records cache;
- spycloud/catalogs.py: their breach sources, ten ids per call, and the catalog cache;
- spycloud/verdicts.py: the evidence for a verdict (e-mails batched by spycloud/batching.py);
- spycloud/exposures.py: observe's assembly of the three, within the lookup's deadline;
- spycloud/compass.py: the infected machines of infostealer records, and the devices cache;
- spycloud/compass_devices.py: the infected devices Compass lists over days, for the tiles;
- spycloud/sources.py: refer's cheaper one, the cached records or the first page only;
- spycloud/pool.py: each call's own pool of threads, and the deadline-bounded waits;
- spycloud/watchlist.py and spycloud/watchlist_records.py: the watchlist and its records.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import TypeVar

from spycloud_relay import state
from spycloud_relay.config import Settings
from spycloud_relay.deadline import Deadline, DeadlineReached
from spycloud_relay.errors import RelayError, UnknownError
from spycloud_relay.spycloud.batching import EmailBatching
from spycloud_relay.spycloud.catalogs import Catalogs, Sources
from spycloud_relay.spycloud.compass import Compass
from spycloud_relay.spycloud.compass_devices import DeviceList, infected_devices
from spycloud_relay.spycloud.exposures import Exposures
from spycloud_relay.spycloud.failures import BadRequest
from spycloud_relay.spycloud.lookup import Lookup, VerdictRule
from spycloud_relay.spycloud.models import Exposure, Observable
from spycloud_relay.spycloud.pool import Pools
from spycloud_relay.spycloud.records import PAGE_ENDPOINTS, BreachRecords, Found
from spycloud_relay.spycloud.sources import ExposingSources
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.spycloud.verdicts import VERDICT_TYPES, Verdicts, VerdictsAhead
from spycloud_relay.spycloud.watchlist import Watchlist
from spycloud_relay.spycloud.watchlist_records import (
    Paged,
    RecordSink,
    Sink,
    watchlist_day,
    watchlist_window,
)
from spycloud_relay.state import Store

__all__ = ['HEALTH_ENDPOINT', 'PAGE_ENDPOINTS', 'VERDICT_TYPES', 'SpyCloudClient']

HEALTH_ENDPOINT = 'breach/catalog/1'

Item = TypeVar('Item')
Result = TypeVar('Result')


class SpyCloudClient:
    """Process-wide (pool, caches, limiter); each call takes the Lookup of its request."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport | None = None,
        catalogs: Store | None = None,
        records: Store | None = None,
    ) -> None:
        self._settings = settings
        self._transport = transport or Transport(settings)
        catalog_cache = catalogs or state.cache(
            settings, 'catalogs', settings.catalog_cache_size, settings.catalog_cache_ttl_s
        )
        records_cache = records or state.cache(
            settings, 'records', settings.records_cache_size, settings.records_cache_ttl_s
        )
        self.watchlist = Watchlist(self._transport)
        pools = Pools(settings.spycloud_max_workers)
        self._pools = pools
        self._records = BreachRecords(self._transport, records_cache)
        self._catalogs = Catalogs(
            self._transport, catalog_cache, settings.spycloud_catalog_batch, pools
        )
        batching = EmailBatching(settings.spycloud_email_batch)
        self._verdicts = Verdicts(self._transport, records_cache, batching, pools)
        compass = (
            Compass(
                self._transport, state.cache(settings, 'devices', *_devices_cache(settings)), pools
            )
            if settings.compass_pivot
            else None
        )
        self._exposures = Exposures(self._records, self._catalogs, self._verdicts, pools, compass)
        self._sources = ExposingSources(self._records, self._catalogs, pools)

    def __enter__(self) -> 'SpyCloudClient':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def in_flight(self) -> int:
        return self._transport.in_flight

    def close(self) -> None:
        self._transport.close()

    def lookup(
        self,
        api_key: str,
        limit: int = 100,
        filters: Mapping[str, str] | None = None,
        verdicts: VerdictRule | None = None,
    ) -> Lookup:
        """A request's context, with a fresh deadline of LOOKUP_DEADLINE_S."""
        return Lookup(
            api_key=api_key,
            deadline=Deadline(self._settings.lookup_deadline_s),
            limit=limit,
            filters=filters or {},
            verdicts=verdicts,
        )

    # -- the calls -------------------------------------------------------------

    def check(self, lookup: Lookup) -> None:
        """One cheap authenticated call, for /health."""
        try:
            self._transport.get(lookup, HEALTH_ENDPOINT)
        except BadRequest:
            pass  # SpyCloud accepted the key; only the probe's answer was odd
        except DeadlineReached:
            raise UnknownError(
                f'SpyCloud did not answer the health check within {lookup.deadline.seconds:g} s.'
            ) from None

    def exposures(
        self, lookup: Lookup, observables: list[Observable]
    ) -> list[Exposure | RelayError]:
        """Exposure (or the RelayError that stopped it) per observable, in order, concurrently
        (spycloud/exposures.py)."""
        return self._exposures.all(lookup, observables)

    def exposure(
        self, lookup: Lookup, observable: Observable, ahead: VerdictsAhead | None = None
    ) -> Exposure:
        """The newest ``lookup.limit`` records of an observable, with their breach sources."""
        return self._exposures.one(lookup, observable, ahead)

    def exposing_sources(
        self, lookup: Lookup, observables: list[Observable]
    ) -> list[Exposure | RelayError]:
        """Per observable, its records and their sources as cheaply as they are known: the
        records cache, else one call for the first page (spycloud/sources.py); for refer."""
        return self._sources.all(lookup, observables)

    def verdicts(
        self, lookup: Lookup, observables: list[Observable]
    ) -> list[Exposure | RelayError]:
        """Per observable, an Exposure holding only the evidence for a verdict, or the
        RelayError that stopped it; the cache is asked once (spycloud/verdicts.py)."""
        return self._verdicts.of(lookup, observables)

    def judged(self, lookup: Lookup, observable: Observable) -> Exposure:
        """The verdict lookup of one observable the cache does not hold: one call."""
        return self._verdicts.judged(lookup, observable)

    def breach_records(self, lookup: Lookup, observable: Observable) -> Found:
        """(records, hits, warnings) of an observable, page by page (spycloud/records.py)."""
        return self._records.fetch(lookup, observable)

    def catalogs(self, lookup: Lookup, ids: list[int]) -> Sources:
        """(found, reasons): the breach sources of ``ids``, cache first (spycloud/catalogs.py)."""
        return self._catalogs.get(lookup, ids)

    def each(
        self,
        lookup: Lookup,
        items: Sequence[Item],
        task: Callable[[Lookup, Item], Result],
        describe: Callable[[Item], str] = str,
    ) -> list[Result | RelayError]:
        """``task(lookup, item)`` for every item at once, on this call's own pool: its result,
        or the RelayError that stopped it (spycloud/pool.py)."""
        return self._pools.each(lookup, items, task, describe)

    def watchlist_day(self, lookup: Lookup, day: date, sink: Sink) -> int:
        """Every watchlist record SpyCloud published on ``day``, each handed to ``sink`` once;
        the records read (spycloud/watchlist_records.py)."""
        return watchlist_day(self._transport, lookup, day, sink)

    def watchlist_window(
        self, lookup: Lookup, window: tuple[date, date], sink: RecordSink, max_pages: int
    ) -> Paged:
        """The watchlist records of the days ``window`` (first, last) to ``sink``, at most
        ``max_pages`` pages; a 504 raises GatewayTimeout unretried (watchlist_records.py)."""
        return watchlist_window(self._transport, lookup, window, sink, max_pages)

    def compass_devices(self, lookup: Lookup, first: date, last: date) -> DeviceList:
        """The infected devices Compass lists for the days ``first`` to ``last``, page by
        page; raises Refused without a Compass licence (spycloud/compass_devices.py)."""
        return infected_devices(self._transport, lookup, first, last)


def _devices_cache(settings: Settings) -> tuple[int, float]:
    """The devices cache: sized and kept as the catalogs' (a machine's logs rarely grow)."""
    return settings.catalog_cache_size, settings.catalog_cache_ttl_s
