"""The watchlist's records of one day, page by page: what the dashboard's tiles count.

Beside spycloud/watchlist.py (is an identifier on the watchlist, and the writes that change
it), this reads ``breach/data/watchlist``: every record SpyCloud published on a day about
any identifier of the key's watchlist. tiles/gather.py pages the days of a period at once.
"""

import itertools
import logging
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.failures import BadRequest
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import BreachRecord, page_items
from spycloud_relay.spycloud.transport import Transport

WATCHLIST_RECORDS = 'breach/data/watchlist'

# What a day's records go to, each once: tiles/aggregate.py's Aggregate.add.
Sink = Callable[[BreachRecord, date], object]

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
    for pages in itertools.count():
        try:
            page = transport.get(lookup, WATCHLIST_RECORDS, {**params, **cursor})
        except BadRequest as error:
            detail = str(error)
            log.warning(
                'SpyCloud refused the watchlist records of %s', day, extra={'detail': detail}
            )
            raise warnings.day_refused(detail, pages) from None
        _hand_over(page, day, seen, sink)
        following = page.get('cursor')
        if not isinstance(following, str) or not following.strip():
            break
        cursor = {'cursor': following}
    return len(seen)


def _hand_over(page: Mapping[str, Any], day: date, seen: set[str], sink: Sink) -> None:
    """The page's records not ``seen`` yet, each to the sink; the malformed are left out."""
    for record in page_items(page, BreachRecord.from_api)[0]:
        if record.document_id not in seen:
            seen.add(record.document_id)
            sink(record, day)
