"""The window arithmetic of the dashboard's gathering (tiles/windows.py) and the page bound's
order check (spycloud/watchlist_records.py), with a fake page source: the simulator always
sends its tenant newest first, so the other order is shown here."""

import datetime

from spycloud_relay.deadline import Deadline
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.watchlist_records import Paged, watchlist_window
from spycloud_relay.tiles.windows import Window, next_size, unfinished, windows

FIRST = datetime.date(2024, 3, 1)


def day(n):
    return FIRST + datetime.timedelta(days=n)


class Pages:
    """A page source: each call answers the next page (two records a page, a cursor while
    pages remain), and keeps what it was asked."""

    def __init__(self, days_per_page):
        self.pages, self.asked = days_per_page, []

    def get(self, lookup, path, params, *, final=()):
        self.asked.append((dict(params), final))
        index = len(self.asked) - 1
        results = [
            {'document_id': f'{index}-{n}', 'spycloud_publish_date': f'{d}T00:00:00Z'}
            for n, d in enumerate(self.pages[index])
        ]
        return {'cursor': 'more' if index + 1 < len(self.pages) else '', 'results': results}


def paged(days_per_page, max_pages=2):
    source, seen = Pages(days_per_page), []
    lookup = Lookup(api_key='k', deadline=Deadline(5))
    window = (day(0), day(9))
    result = watchlist_window(source, lookup, window, seen.append, max_pages)  # type: ignore[arg-type]
    return result, source, seen


def test_pages_newest_first_stop_at_the_bound_with_the_oldest_day_read():
    result, source, seen = paged([[day(9), day(8)], [day(7), day(6)], [day(1), day(0)]])
    assert result == Paged(complete=False, newest_first=True, oldest=day(6))
    assert len(source.asked) == 2 and len(seen) == 4
    assert source.asked[0] == ({'since': '2024-03-01', 'until': '2024-03-11'}, (504,))
    assert unfinished(Window(day(0), day(9)), result) == Window(day(0), day(6))


def test_pages_in_another_order_leave_the_whole_window_to_ask_again():
    result, _, _ = paged([[day(3), day(8)], [day(7), day(6)], [day(1), day(0)]])
    assert result == Paged(complete=False, newest_first=False, oldest=day(3))
    assert unfinished(Window(day(0), day(9)), result) == Window(day(0), day(9))


def test_a_window_within_the_bound_is_complete():
    result, source, seen = paged([[day(9), day(2)], [day(1), day(0)]])
    assert result.complete and len(source.asked) == 2 and len(seen) == 4


def test_a_period_is_the_fewest_windows_of_near_equal_length():
    days = [day(n) for n in range(91)]
    assert [w.length for w in windows(days, 30)] == [23, 23, 23, 22]
    assert [w.length for w in windows(days[:8], 30)] == [8]
    assert [w.length for w in windows(days[:5], 1)] == [1] * 5
    assert [w.days for w in windows(days, 30)] == [days[:23], days[23:46], days[46:69], days[69:]]
    assert Window(day(0), day(22)).halves() == (Window(day(0), day(11)), Window(day(12), day(22)))


def test_the_next_size():
    assert next_size(23, 30, bounded=True) == 23  # stopped at the page bound: the same size
    assert next_size(5, 30, bounded=False) == 10  # no split: twice the size
    assert next_size(23, 30, bounded=False) == 30  # up to WATCHLIST_WINDOW_DAYS
    # never up to a size that timed out: under a gateway that answers 504 past 10 days, the
    # size settles at 10 instead of growing into the 504s every other gathering
    assert next_size(10, 30, bounded=False, ceiling=11) == 10
    assert next_size(6, 30, bounded=False, ceiling=11) == 10
    assert next_size(23, 30, bounded=True, ceiling=11) == 10
    assert next_size(1, 30, bounded=False, ceiling=1) == 1
