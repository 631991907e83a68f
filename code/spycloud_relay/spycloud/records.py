"""An observable's breach records: its pages, followed by ``cursor``, and the records cache.

The newest ``lookup.limit`` records are wanted, and SpyCloud answers a page at a time, so
the pages are followed until that many are collected, SpyCloud has no more, or a failure
stops the paging: the earlier pages are kept, with a warning that says why. Only whole
answers are cached (per key, observable, filters and limit): a cut-short one is asked again.
"""

from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from spycloud_relay.deadline import DeadlineReached
from spycloud_relay.errors import RelayError, RelayWarning
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.failures import BadRequest, Refused
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import BreachRecord, Exposure, Observable, page_items
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.state import MISSING, Store

PAGE_ENDPOINTS = {
    'email': 'breach/data/emails/',
    'domain': 'breach/data/domains/',
    'ip': 'breach/data/ips/',
    'ipv6': 'breach/data/ips/',
    'user': 'breach/data/usernames/',
}
CURSOR_EXPIRED = 'cursor'  # SpyCloud's 400 for a stale cursor names the parameter
# Pages in a row that bring no record not already read while their cursor still goes on:
# SpyCloud's paging is going round, and would be followed until the deadline.
STALE_PAGES = 3

# (records, hits, warnings): the newest records, SpyCloud's count, and what cut them short.
Found = tuple[list[BreachRecord], int, list[RelayWarning]]
Answer = TypeVar('Answer')


class GoingRound:
    """Whether a query's paging goes round: STALE_PAGES pages in a row that added no record
    (a cursor that keeps coming back with nothing new would be followed until the deadline).
    Observe's pages, the dashboard's days and the sync's windows each keep one."""

    def __init__(self) -> None:
        self._kept = self._stale = 0

    def after(self, kept: int) -> bool:
        """``kept``: the records kept after a page; True once STALE_PAGES added none."""
        self._stale = self._stale + 1 if kept == self._kept else 0
        self._kept = kept
        return self._stale >= STALE_PAGES


def records_path(observable: Observable) -> str:
    """The records endpoint of an observable, its value a single path step."""
    return PAGE_ENDPOINTS[observable.type] + quote(observable.value, safe='@')


def asked(observable: Observable, call: Callable[[], Answer]) -> Answer | Exposure:
    """``call()``'s answer on ``observable``, or the empty Exposure that says why there is none:
    a value of dots only is never asked (records_path would read it as a path step), and
    SpyCloud refuses a selector that is not on the key's watchlist. Observe, the sources-only
    lookup and the verdict call share it, so the three say the same."""
    if not observable.value.strip('.'):
        return Exposure.empty(observable, warnings.not_a_value(observable))
    try:
        return call()
    except Refused as error:
        return Exposure.empty(observable, warnings.refused(observable, error))


class Pages:
    """The records of one observable as its pages arrive: de-duplicated, counted, capped."""

    def __init__(self, observable: Observable, limit: int) -> None:
        self.observable, self.limit = observable, limit
        self.records: list[BreachRecord] = []
        self.count, self.hits, self.done = 0, 0, False
        self.cursor: dict[str, str] = {}
        self._seen: set[str] = set()
        self._round = GoingRound()
        self._skipped = 0
        self._warnings: list[RelayWarning] = []

    def add(self, page: Mapping[str, Any]) -> None:
        self.count += 1
        self.hits = max(self.hits, _count(page.get('hits')))
        records, skipped = page_items(page, BreachRecord.from_api)
        self._skipped += skipped
        for record in records:
            if record.document_id not in self._seen:
                self._seen.add(record.document_id)
                self.records.append(record)
        going_round = self._round.after(len(self.records))
        cursor = page.get('cursor')
        # The filters go along with the cursor: some SpyCloud clients rely on it.
        self.cursor = {'cursor': cursor} if isinstance(cursor, str) and cursor.strip() else {}
        self.done = len(self.records) >= self.limit or not self.cursor
        if not self.done and going_round:
            self.stop(warnings.paging_round(f'the records of {self.observable.value}', self.count))

    def stop(self, warning: RelayWarning | None = None) -> None:
        if warning is not None:
            self._warnings.append(warning)
        self.done = True

    def result(self) -> Found:
        if self._skipped:
            self._warnings.append(warnings.malformed_records(self.observable, self._skipped))
        self.records.sort(key=lambda record: record.published, reverse=True)
        return (self.records[: self.limit], max(self.hits, len(self.records)), list(self._warnings))


class BreachRecords:
    """The paging of an observable's records, over the client's transport and records cache."""

    def __init__(self, transport: Transport, cache: Store) -> None:
        self._transport = transport
        self._cache = cache

    def fetch(self, lookup: Lookup, observable: Observable) -> Found:
        """(records, hits, warnings): follows ``cursor`` until ``lookup.limit`` records are
        collected, SpyCloud has no more, or a failure stops it (earlier pages are kept)."""
        key = _key(lookup, observable)
        cached = self._cache.get(key, secret=lookup.api_key)
        if cached is not MISSING:
            lookup.stats.add(cache_hits=1)
            return cached[0], cached[1], []
        records, hits, found = self._paged(lookup, observable)
        if not found:  # only whole answers are kept: a cut-short one is asked again
            self._cache.set(key, (records, hits), secret=lookup.api_key)
        return records, hits, found

    def first(self, lookup: Lookup, observable: Observable) -> Found:
        """(records, hits, warnings) from the cache, else from SpyCloud's first page alone:
        one call, for a refer that must stay cheap. The page is cached only when it is the
        whole answer ``fetch`` would have kept (no more pages, or the limit reached)."""
        key = _key(lookup, observable)
        cached = self._cache.get(key, secret=lookup.api_key)
        if cached is not MISSING:
            lookup.stats.add(cache_hits=1)
            return cached[0], cached[1], []
        pages = Pages(observable, lookup.limit)
        self._next(lookup, records_path(observable), pages)
        records, hits, found = pages.result()
        if pages.done and not found:
            self._cache.set(key, (records, hits), secret=lookup.api_key)
        return records, hits, found

    def _paged(self, lookup: Lookup, observable: Observable) -> Found:
        """The pages of an observable, one after the other, until done or stopped."""
        path = records_path(observable)
        pages = Pages(observable, lookup.limit)
        while not pages.done:
            self._next(lookup, path, pages)
        return pages.result()

    def _next(self, lookup: Lookup, path: str, pages: Pages) -> None:
        """One more page into ``pages``, or the reason it stops there."""
        observable = pages.observable
        try:
            page = self._transport.get(lookup, path, {**lookup.filters, **pages.cursor})
        except BadRequest as error:
            pages.stop(_bad_request(observable, lookup.filters, error, pages))
        except DeadlineReached:
            pages.stop(
                warnings.cut_short(
                    lookup.deadline,
                    f'the breach records of {observable.value} after {pages.count} page(s)',
                )
            )
        except RelayError as error:
            if not pages.count:
                raise
            pages.stop(warnings.page_failed(observable, pages.count, len(pages.records), error))
        else:
            pages.add(page)


def _key(lookup: Lookup, observable: Observable) -> tuple[object, ...]:
    """The cache key of a whole answer: whose key, which observable, filters and limit."""
    return (
        'records',
        lookup.fingerprint,
        observable.type,
        observable.value,
        tuple(sorted(lookup.filters.items())),
        lookup.limit,
    )


def _bad_request(
    observable: Observable, filters: Mapping[str, str], error: BadRequest, pages: Pages
) -> RelayWarning | None:
    """SpyCloud's 400: an expired cursor, a refused filter, or (otherwise) no data."""
    message = str(error)
    if pages.cursor and CURSOR_EXPIRED in message.lower():
        return warnings.cursor_expired(observable, pages.count)
    refused = [name for name in filters if f"'{name}'" in message.lower()]
    if refused:
        return warnings.filter_refused(observable, refused[0], message)
    return None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
