"""The watchlist records SpyCloud published or modified in a span of time, window by window.

The sync reads ``breach/data/watchlist`` by ``record_modification_date`` (a record SpyCloud
changed after publication, a password cracked later, comes again), the whole span asked as
one window first. SpyCloud's gateway answers 504 to a query too large for it, so such a window
is asked again in halves, oldest first, down to MIN_WINDOW (tiles/windows.py does the same by
days for the dashboard). Each window is yielded complete, all its cursor pages read, so the
caller can import it and advance its checkpoint to the window's end before the next one.
"""

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from spycloud_relay.errors import RelayWarning
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.failures import BadRequest, GatewayTimeout
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import BreachRecord, page_items
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.spycloud.watchlist_records import WATCHLIST_RECORDS

# The smallest window asked: one that still times out fails the pull (its RelayError raised).
MIN_WINDOW = timedelta(minutes=15)
STAMP = '%Y-%m-%dT%H:%M:%SZ'

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PulledWindow:
    """The records modified from ``since`` to ``until`` (UTC, whole seconds, both included),
    each ``document_id`` once."""

    since: datetime
    until: datetime
    records: list[BreachRecord]


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
) -> Iterator[PulledWindow]:
    """The windows of ``since`` to ``until``, oldest first, each complete. A window answered
    504 (not retried: a smaller one is asked instead) is split in halves that share its middle
    second, so no record between them is lost whether SpyCloud's ``until`` is inclusive or not;
    one shorter than twice MIN_WINDOW raises its GatewayTimeout. Raises the RelayError of any
    other failure, and a RelayWarning when SpyCloud refuses the query (400)."""
    pending = [(_second(since), _second(until))]
    while pending:
        start, end = pending.pop()
        try:
            records = _window(transport, lookup, start, end, severities)
        except GatewayTimeout:
            if end - start < 2 * MIN_WINDOW:
                raise
            log.info('SpyCloud timed out on %s: asking it in halves', _describe(start, end))
            pending.extend(reversed(halves(start, end)))
            continue
        yield PulledWindow(start, end, records)


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
) -> list[BreachRecord]:
    """A window's records, all its pages; an expired cursor has it asked again once from its
    start, a second one (or a 400 on the first page) raises the RelayWarning naming it."""
    params = {
        'since_modification_date': since.strftime(STAMP),
        'until_modification_date': until.strftime(STAMP),
    }
    if severities:
        params['severity'] = ','.join(str(severity) for severity in severities)
    what = _describe(since, until)
    try:
        return _pages(transport, lookup, params, what)
    except _CursorLost as lost:
        log.warning('The paging cursor of %s expired after %d page(s): again', what, lost.pages)
    try:
        return _pages(transport, lookup, params, what)
    except _CursorLost as again:
        raise _refused(again.detail, again.pages, what) from None


def _pages(
    transport: Transport, lookup: Lookup, params: Mapping[str, str], what: str
) -> list[BreachRecord]:
    """Every page of one query, each record once (the first copy of a repeated one)."""
    found: dict[str, BreachRecord] = {}
    cursor: dict[str, str] = {}
    pages = 0
    while True:
        try:
            page = transport.get(lookup, WATCHLIST_RECORDS, {**params, **cursor}, final=(504,))
        except BadRequest as error:
            if pages:
                raise _CursorLost(str(error), pages) from None
            raise _refused(str(error), 0, what) from None
        pages += 1
        records, skipped = page_items(page, BreachRecord.from_api)
        if skipped:
            log.warning('SpyCloud sent %d malformed record(s) in %s', skipped, what)
        for record in records:
            found.setdefault(record.document_id, record)
        following = page.get('cursor')
        if not isinstance(following, str) or not following.strip():
            return list(found.values())
        cursor = {'cursor': following}


def _refused(detail: str, pages: int, what: str) -> RelayWarning:
    log.warning('SpyCloud refused %s', what, extra={'detail': detail})
    return warnings.day_refused(detail, pages, what)


def _describe(since: datetime, until: datetime) -> str:
    return f'the watchlist records modified from {since.strftime(STAMP)} to {until.strftime(STAMP)}'


def _second(moment: datetime) -> datetime:
    """In UTC (a naive moment read as UTC), to the second: what the query can say."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=0)
