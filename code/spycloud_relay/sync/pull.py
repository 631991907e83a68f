"""The watchlist records SpyCloud published or modified in a span of time, window by window.

The sync reads ``breach/data/watchlist`` by ``record_modification_date`` (a record SpyCloud
changed after publication, a password cracked later, comes again), the span asked as the fewest
windows of at most SYNC_WINDOW_DAYS, oldest first. SpyCloud's gateway answers 504 to a query too
large for it, and a window may hold more records than a run should keep at once, so a window
answered 504, or whose cursor goes on past SYNC_WINDOW_PAGES pages, is asked again in halves,
down to MIN_WINDOW (tiles/windows.py does the same by days for the dashboard). Each window is
yielded complete, all its cursor pages read, so the caller can import it and advance its
checkpoint to the window's end before the next one: a first run over a long lookback keeps one
window's records at a time, and a crash resumes from the last window imported.
"""

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spycloud_relay.errors import RelayWarning
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.failures import BadRequest, GatewayTimeout
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import BreachRecord, page_items
from spycloud_relay.spycloud.records import GoingRound
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.spycloud.watchlist_records import WATCHLIST_RECORDS

# The smallest window asked: one that still times out fails the pull (its RelayError raised),
# one that still pages beyond the bound is read whole.
MIN_WINDOW = timedelta(minutes=15)
WINDOW = timedelta(days=30)  # SYNC_WINDOW_DAYS' default
PAGE_BOUND = 10  # SYNC_WINDOW_PAGES' default: 10,000 records, about 110 MiB of a run's memory
STAMP = '%Y-%m-%dT%H:%M:%SZ'

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PulledWindow:
    """The records modified from ``since`` to ``until`` (UTC, whole seconds, both included),
    each ``document_id`` once."""

    since: datetime
    until: datetime
    records: list[BreachRecord]


class _TooManyPages(Exception):
    """A window whose cursor goes on past the page bound: asked again in halves."""


class _CursorLost(Exception):
    """A 400 after the first page: SpyCloud's cursor expired (it lives about two minutes)."""

    def __init__(self, detail: str, pages: int) -> None:
        super().__init__(detail)
        self.detail, self.pages = detail, pages


def pull_changed(
    transport: Transport,
    lookup: Lookup,
    since: datetime,
    until: datetime,
    severities: Sequence[int],
    *,
    window: timedelta = WINDOW,
    page_bound: int = PAGE_BOUND,
) -> Iterator[PulledWindow]:
    """The windows of ``since`` to ``until``, oldest first, each complete and none longer than
    ``window``. A window answered 504 (not retried: a smaller one is asked instead), or whose
    cursor goes on past ``page_bound`` pages (what it read is dropped), is split in halves that
    share its middle second, so no record between them is lost whether SpyCloud's ``until`` is
    inclusive or not. One shorter than twice MIN_WINDOW raises its GatewayTimeout, and is read
    whole however many pages it has. Raises the RelayError of any other failure, and a
    RelayWarning when SpyCloud refuses the query (400)."""
    pending = list(reversed(spans(_second(since), _second(until), window)))
    while pending:
        start, end = pending.pop()
        splittable = end - start >= 2 * MIN_WINDOW
        try:
            records = _window(
                transport, lookup, start, end, severities, page_bound if splittable else None
            )
        except GatewayTimeout:
            if not splittable:
                raise
            log.info('SpyCloud timed out on %s: asking it in halves', _describe(start, end))
            pending.extend(reversed(halves(start, end)))
            continue
        except _TooManyPages:
            log.info(
                '%s go on past %d pages: asking it in halves', _describe(start, end), page_bound
            )
            pending.extend(reversed(halves(start, end)))
            continue
        yield PulledWindow(start, end, records)


def spans(since: datetime, until: datetime, longest: timedelta) -> list[tuple[datetime, datetime]]:
    """The fewest windows of near-equal length, in whole seconds, none longer than ``longest``,
    oldest first, each sharing its last second with the next (as halves do)."""
    seconds = max(0, int((until - since).total_seconds()))
    count = max(1, -(-seconds // max(1, int(longest.total_seconds()))))
    cuts = [since + timedelta(seconds=seconds * n // count) for n in range(count + 1)]
    return list(zip(cuts, cuts[1:], strict=False))


def halves(since: datetime, until: datetime) -> tuple[tuple[datetime, datetime], ...]:
    """The older and the newer half of a window, in whole seconds, sharing the middle one."""
    middle = since + timedelta(seconds=(until - since) // timedelta(seconds=2))
    return (since, middle), (middle, until)


def _window(
    transport: Transport,
    lookup: Lookup,
    since: datetime,
    until: datetime,
    severities: Sequence[int],
    page_bound: int | None,
) -> list[BreachRecord]:
    """A window's records, all its pages; an expired cursor has it asked again once from its
    start, a second one (or a 400 on the first page) raises the RelayWarning naming it, and a
    cursor that goes on past ``page_bound`` pages (None: no bound) raises _TooManyPages."""
    params = {
        'since_modification_date': since.strftime(STAMP),
        'until_modification_date': until.strftime(STAMP),
    }
    if severities:
        params['severity'] = ','.join(str(severity) for severity in severities)
    what = _describe(since, until)
    try:
        return _pages(transport, lookup, params, what, page_bound)
    except _CursorLost as lost:
        log.warning('The paging cursor of %s expired after %d page(s): again', what, lost.pages)
    try:
        return _pages(transport, lookup, params, what, page_bound)
    except _CursorLost as again:
        raise _refused(again.detail, again.pages, what) from None


def _pages(
    transport: Transport,
    lookup: Lookup,
    params: Mapping[str, str],
    what: str,
    page_bound: int | None,
) -> list[BreachRecord]:
    """Every page of one query, each record once (the first copy of a repeated one)."""
    found: dict[str, BreachRecord] = {}
    cursor: dict[str, str] = {}
    pages = 0
    paging = GoingRound()
    while True:
        try:
            page = transport.get(lookup, WATCHLIST_RECORDS, {**params, **cursor}, final=(504,))
        except BadRequest as error:
            if pages:
                raise _CursorLost(str(error), pages) from None
            raise _refused(str(error), 0, what) from None
        pages += 1
        _keep(page, found, what)
        going_round = paging.after(len(found))
        following = page.get('cursor')
        if not isinstance(following, str) or not following.strip():
            return list(found.values())
        if going_round:  # a window too short to split has no page bound to stop it
            log.warning('SpyCloud paged %s round: stopped after page %d', what, pages)
            return list(found.values())
        if page_bound is not None and pages >= page_bound:
            raise _TooManyPages
        cursor = {'cursor': following}


def _keep(page: Mapping[str, Any], found: dict[str, BreachRecord], what: str) -> None:
    """The page's records into ``found``, each document once (the first copy)."""
    records, skipped = page_items(page, BreachRecord.from_api)
    if skipped:
        log.warning('SpyCloud sent %d malformed record(s) in %s', skipped, what)
    for record in records:
        found.setdefault(record.document_id, record)


def _refused(detail: str, pages: int, what: str) -> RelayWarning:
    log.warning('SpyCloud refused %s', what, extra={'detail': detail})
    return warnings.day_refused(detail, pages, what)


def _describe(since: datetime, until: datetime) -> str:
    return f'the watchlist records modified from {since.strftime(STAMP)} to {until.strftime(STAMP)}'


def _second(moment: datetime) -> datetime:
    """In UTC (a naive moment read as UTC), to the second: what the query can say."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=0)
