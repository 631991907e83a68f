"""The watchlist's records of a window of days, page by page: what the dashboard's tiles count.

Beside spycloud/watchlist.py (is an identifier on the watchlist, and the writes that change
it), this reads ``breach/data/watchlist``: every record SpyCloud published in a window of
days about any identifier of the key's watchlist. tiles/windows.py decides the windows: a
window of several days is asked once, its 504 not retried (it is split instead) and its
paging stopped at a bound; a day is the fallback, retried as any call.
"""

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.failures import BadRequest
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import BreachRecord, page_items
from spycloud_relay.spycloud.records import GoingRound
from spycloud_relay.spycloud.transport import Transport

WATCHLIST_RECORDS = 'breach/data/watchlist'

# What a day's records go to, each once: tiles/aggregate.py's Aggregate.add.
Sink = Callable[[BreachRecord, date], object]
# What a window's records go to, repeats included (the gathering counts each once).
RecordSink = Callable[[BreachRecord], object]

# The logger this line was written to before the client was split: logs are read by it.
log = logging.getLogger(__name__)


def watchlist_day(
    transport: Transport,
    lookup: Lookup,
    day: date,
    sink: Sink,
) -> int:
    """Every watchlist record SpyCloud published on ``day``, page by page, handed to
    ``sink(record, day)`` once each as each page arrives; the records read. Only the day's
    document ids are kept, to hand a record repeated on a later page once (as observe's
    pages do): the slices of other days never count it, as it is not their day.

    ``until`` is the next day: whether SpyCloud reads a date-only ``until`` as that day's
    start or end, the slice holds all of ``day``, and the sink drops what is not its day.
    SpyCloud's 400 (a refused parameter, an expired cursor) raises a RelayWarning that names
    it, logged as a warning: for a whole watchlist it does not mean "no records".
    """
    params = {'since': day.isoformat(), 'until': (day + timedelta(days=1)).isoformat()}
    cursor: dict[str, str] = {}
    seen: set[str] = set()
    paging = GoingRound()
    for pages in itertools.count(1):
        try:
            page = transport.get(lookup, WATCHLIST_RECORDS, {**params, **cursor})
        except BadRequest as error:
            detail = str(error)
            log.warning(
                'SpyCloud refused the watchlist records of %s', day, extra={'detail': detail}
            )
            raise warnings.day_refused(detail, pages - 1) from None
        _hand_over(page, day, seen, sink)
        going_round = paging.after(len(seen))
        following = page.get('cursor')
        if not isinstance(following, str) or not following.strip():
            break
        if going_round:
            log.warning('SpyCloud paged the watchlist records of %s round: stopped', day)
            raise warnings.paging_round(f'the watchlist records of {day}', pages)
        cursor = {'cursor': following}
    return len(seen)


def _hand_over(page: Mapping[str, Any], day: date, seen: set[str], sink: Sink) -> None:
    """The page's records not ``seen`` yet, each to the sink; the malformed are left out."""
    for record in page_items(page, BreachRecord.from_api)[0]:
        if record.document_id not in seen:
            seen.add(record.document_id)
            sink(record, day)


@dataclass(frozen=True)
class Paged:
    """How a window's paging ended: ``complete``, or stopped at the page bound; whether its
    records came newest first (SpyCloud's documented order), and the oldest day among them."""

    complete: bool
    newest_first: bool = True
    oldest: date | None = None


def watchlist_window(
    transport: Transport,
    lookup: Lookup,
    window: tuple[date, date],
    sink: RecordSink,
    max_pages: int,
) -> Paged:
    """The records of the days ``window`` (first, last, both included) to ``sink`` as pages
    arrive, for at most ``max_pages`` pages. SpyCloud's 504 is not retried: it raises
    GatewayTimeout at once, for the caller to ask smaller windows. A 400 raises the
    RelayWarning ``watchlist_day`` raises."""
    first, last = window
    params = {'since': first.isoformat(), 'until': (last + timedelta(days=1)).isoformat()}
    cursor: dict[str, str] = {}
    order = _Order()
    for pages in range(1, max_pages + 1):
        try:
            page = transport.get(lookup, WATCHLIST_RECORDS, {**params, **cursor}, final=(504,))
        except BadRequest as error:
            detail = str(error)
            log.warning(
                'SpyCloud refused the watchlist records of %s to %s',
                first,
                last,
                extra={'detail': detail},
            )
            raise warnings.day_refused(detail, pages - 1, 'a window of days') from None
        for record in page_items(page, BreachRecord.from_api)[0]:
            order.saw(record.published)
            sink(record)
        following = page.get('cursor')
        if not isinstance(following, str) or not following.strip():
            return Paged(True, order.newest_first, order.oldest)
        cursor = {'cursor': following}
    return Paged(False, order.newest_first, order.oldest)


class _Order:
    """Whether publish dates came newest first, and the oldest of them."""

    def __init__(self) -> None:
        self.newest_first = True
        self.last: datetime | None = None

    def saw(self, published: datetime) -> None:
        if self.last is not None and published > self.last:
            self.newest_first = False
        self.last = published if self.last is None else min(self.last, published)

    @property
    def oldest(self) -> date | None:
        return self.last.date() if self.last is not None else None
