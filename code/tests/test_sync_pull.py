"""The sync's pull (sync/pull.py) against the simulator over HTTP: the watchlist records
modified in a span, window by window, as the simulator's tenant holds them (counted from its
data, so they hold whatever the date)."""

import datetime
import math

import pytest

from simulator import DEFAULT_API_KEY, tenant
from spycloud_relay.config import Settings
from spycloud_relay.deadline import Deadline
from spycloud_relay.errors import RelayWarning
from spycloud_relay.spycloud.failures import GatewayTimeout
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.records import STALE_PAGES
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.sync.pull import MIN_WINDOW, PAGE_BOUND, PulledWindow, pull_changed, spans

STAMP = '%Y-%m-%dT%H:%M:%SZ'
SEVERITIES = (20, 25, 26, 30)
SECOND = datetime.timedelta(seconds=1)


@pytest.fixture
def transport(spycloud):
    made = Transport(
        Settings(
            spycloud_api_url=spycloud.url,
            spycloud_backoff_s=0.01,
            connect_timeout_s=2.0,
            read_timeout_s=5.0,
            spycloud_rate_limit=0,
        )
    )
    yield made
    made.close()


@pytest.fixture
def lookup():
    return Lookup(api_key=DEFAULT_API_KEY, deadline=Deadline(120))


def now():
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def modified_between(since, until, severities=SEVERITIES):
    """The tenant's records modified from ``since`` to ``until`` (both included), by id."""
    low, high = since.strftime(STAMP), until.strftime(STAMP)
    return {
        record['document_id']
        for records in tenant.records_by_day(now().date()).values()
        for record in records
        if low <= record['record_modification_date'] <= high and record['severity'] in severities
    }


def ids(windows):
    return {record.document_id for window in windows for record in window.records}


def watchlist_calls(spycloud):
    return [e for e in spycloud.request_log if e['endpoint'] == 'watchlist-records']


def test_a_lookback_is_one_window_of_exactly_the_records_modified_in_it(
    spycloud, transport, lookup
):
    until = now()
    since = until - datetime.timedelta(days=7)
    windows = list(pull_changed(transport, lookup, since, until, SEVERITIES))
    expected = modified_between(since, until)
    assert [(w.since, w.until) for w in windows] == [(since, until)]
    (window,) = windows
    assert expected and {r.document_id for r in window.records} == expected
    assert len(window.records) == len(expected)  # each once
    assert any(r.published < since for r in window.records)  # published before, modified in it
    (call,) = watchlist_calls(spycloud)
    assert call['query'] == {
        'since_modification_date': [since.strftime(STAMP)],
        'until_modification_date': [until.strftime(STAMP)],
        'severity': ['20,25,26,30'],
    }
    assert lookup.stats.spycloud_calls == 1


def test_a_record_published_a_second_before_until_is_read(spycloud, transport, lookup):
    (fresh,) = spycloud.publish([{'source_id': 70_001, 'severity': 25, 'email': 'a@example.org'}])
    until = now() + SECOND
    late = (until + SECOND).strftime(STAMP)
    edge = (until - SECOND).strftime(STAMP)
    spycloud.publish(
        [
            {
                'document_id': 'edge',
                'source_id': 70_001,
                'severity': 20,
                'spycloud_publish_date': edge,
                'record_modification_date': edge,
            },
            {
                'document_id': 'late',
                'source_id': 70_001,
                'severity': 20,
                'spycloud_publish_date': late,
                'record_modification_date': late,
            },
        ]
    )
    since = until - datetime.timedelta(hours=1)
    windows = list(pull_changed(transport, lookup, since, until, SEVERITIES))
    # the tenant's own records modified in that hour (some, at some times of day) come too
    expected = modified_between(since, until) | {fresh['document_id'], 'edge'}
    assert 'late' not in expected
    assert ids(windows) == expected


def test_a_record_spycloud_modifies_is_read_again_with_its_new_date(spycloud, transport, lookup):
    start = now()
    old = next(iter(tenant.records_by_day(start.date()).values()))[0]
    spycloud.modify(old['document_id'], severity=25)
    (window,) = pull_changed(transport, lookup, start, now() + SECOND, SEVERITIES)
    (record,) = window.records
    assert record.document_id == old['document_id'] and record.severity == 25
    assert record.get('record_modification_date') >= start.strftime(STAMP)


@pytest.mark.parametrize('severities', [(25,), (2, 5), (20, 25, 26, 30)])
def test_only_the_severities_asked_are_read(transport, lookup, severities):
    until = now()
    since = until - datetime.timedelta(days=7)
    (window,) = pull_changed(transport, lookup, since, until, severities)
    assert {r.severity for r in window.records} <= set(severities)
    assert {r.document_id for r in window.records} == modified_between(since, until, severities)


def test_a_window_follows_its_cursor_to_the_last_page(spycloud, transport, lookup):
    spycloud.page_size = 7
    until = now()
    since = until - datetime.timedelta(days=7)
    unbounded = 1_000_000  # the page bound is another test's
    (window,) = pull_changed(transport, lookup, since, until, SEVERITIES, page_bound=unbounded)
    expected = modified_between(since, until)
    assert {r.document_id for r in window.records} == expected
    calls = watchlist_calls(spycloud)
    assert len(calls) == lookup.stats.spycloud_calls == math.ceil(len(expected) / 7)
    assert 'cursor' not in calls[0]['query'] and all('cursor' in c['query'] for c in calls[1:])


def test_a_window_answered_504_is_asked_in_halves_oldest_first(spycloud, transport, lookup):
    """The gateway gives up on more than two days: seven are asked whole, then in halves of
    3.5 days (504 too), then in quarters; the 504s are not retried."""
    spycloud.watchlist_max_days = 2
    until = now()
    since = until - datetime.timedelta(days=7)
    windows = list(pull_changed(transport, lookup, since, until, SEVERITIES))
    quarter = datetime.timedelta(days=7) / 4
    assert [(w.since, w.until) for w in windows] == [
        (since + n * quarter, since + (n + 1) * quarter) for n in range(4)
    ]
    assert ids(windows) == modified_between(since, until)
    for window in windows:
        assert {r.document_id for r in window.records} == modified_between(
            window.since, window.until
        )
    statuses = [c['status'] for c in watchlist_calls(spycloud)]
    assert statuses == [504, 504, 200, 200, 504, 200, 200]
    assert lookup.stats.spycloud_calls == 7 and lookup.stats.retries == 0


def test_a_smallest_window_that_still_times_out_raises(spycloud, transport, lookup):
    spycloud.add_fault(504, match='breach/data/watchlist')
    until = now()
    with pytest.raises(GatewayTimeout):
        next(
            pull_changed(transport, lookup, until - datetime.timedelta(hours=1), until, SEVERITIES)
        )
    spans = []
    for call in watchlist_calls(spycloud):
        since, end = (
            datetime.datetime.strptime(call['query'][name][0], STAMP)
            for name in ('since_modification_date', 'until_modification_date')
        )
        spans.append(end - since)
    assert spans == [datetime.timedelta(hours=1), 2 * MIN_WINDOW, MIN_WINDOW]


def test_an_expired_cursor_has_the_window_asked_again_from_its_start(spycloud, transport, lookup):
    spycloud.page_size = 50
    spycloud.refuse_parameter('cursor', 'Cursor not found.', match='cursor=', times=1)
    until = now()
    since = until - datetime.timedelta(days=7)
    (window,) = pull_changed(transport, lookup, since, until, SEVERITIES, page_bound=1_000_000)
    expected = modified_between(since, until)
    assert {r.document_id for r in window.records} == expected
    pages = math.ceil(len(expected) / 50)
    calls = watchlist_calls(spycloud)
    assert [c['status'] for c in calls] == [200, 400] + [200] * pages
    assert 'cursor' not in calls[2]['query']


def test_a_cursor_that_expires_again_names_the_window(spycloud, transport, lookup):
    spycloud.page_size, spycloud.cursor_ttl = 50, 0.0
    until = now()
    since = until - datetime.timedelta(days=7)
    with pytest.raises(RelayWarning) as raised:
        next(pull_changed(transport, lookup, since, until, SEVERITIES))
    assert raised.value.code == 'incomplete'
    assert (
        f'modified from {since.strftime(STAMP)} to {until.strftime(STAMP)}' in raised.value.message
    )
    assert 'cursor' in raised.value.message
    assert [c['status'] for c in watchlist_calls(spycloud)] == [200, 400, 200, 400]


def test_a_refused_query_is_not_asked_again(spycloud, transport, lookup):
    spycloud.refuse_parameter('severity', 'Must be a known severity.', match='watchlist')
    until = now()
    with pytest.raises(RelayWarning) as raised:
        next(pull_changed(transport, lookup, until - datetime.timedelta(days=1), until, (99,)))
    assert raised.value.code == 'invalid argument' and 'severity' in raised.value.message
    assert len(watchlist_calls(spycloud)) == 1


def test_a_record_repeated_within_a_window_is_read_once(spycloud, transport, lookup):
    until = now()
    stamp = (until - datetime.timedelta(minutes=5)).strftime(STAMP)

    def record(document_id, severity):
        return {
            'document_id': document_id,
            'source_id': 70_001,
            'severity': severity,
            'spycloud_publish_date': stamp,
        }

    spycloud.watchlist_records = [record('a', 20), record('b', 25), record('a', 20)]
    spycloud.page_size = 1
    (window,) = pull_changed(
        transport, lookup, until - datetime.timedelta(hours=1), until, SEVERITIES
    )
    assert [r.document_id for r in window.records] == ['a', 'b']
    assert isinstance(window, PulledWindow) and len(watchlist_calls(spycloud)) == 3


# -- windows no longer than SYNC_WINDOW_DAYS, and no more pages than SYNC_WINDOW_PAGES --------


def query_span(call):
    return tuple(
        datetime.datetime.strptime(call['query'][name][0], STAMP).replace(tzinfo=datetime.UTC)
        for name in ('since_modification_date', 'until_modification_date')
    )


def test_a_long_span_is_the_fewest_windows_no_longer_than_the_window(spycloud, transport, lookup):
    """A first run over 90 days with 30-day windows: three windows, oldest first, each
    imported (and checkpointed) before the next is asked; one page per 1000 records."""
    until = now()
    since = until - datetime.timedelta(days=90)
    month = datetime.timedelta(days=30)
    windows = list(pull_changed(transport, lookup, since, until, SEVERITIES, window=month))
    bounds = [
        (since, since + month),
        (since + month, since + 2 * month),
        (since + 2 * month, until),
    ]
    assert [(w.since, w.until) for w in windows] == bounds
    counts = [len(modified_between(*bound)) for bound in bounds]
    assert max(counts) <= PAGE_BOUND * 1000  # the tenant's windows fit the default bound
    for window, count in zip(windows, counts, strict=True):
        assert {r.document_id for r in window.records} == modified_between(
            window.since, window.until
        )
        assert len(window.records) == count
    assert ids(windows) == modified_between(since, until)
    calls = watchlist_calls(spycloud)
    assert len(calls) == sum(max(1, math.ceil(count / 1000)) for count in counts)
    assert [query_span(c) for c in calls if 'cursor' not in c['query']] == bounds


def hourly(until, *hours):
    """Records of severity 20 modified the given hours (fractions too) before ``until``."""
    records = []
    for n, before in enumerate(hours):
        stamp = (until - datetime.timedelta(hours=before)).strftime(STAMP)
        records.append(
            {
                'document_id': f'r{n}',
                'source_id': 70_001,
                'severity': 20,
                'spycloud_publish_date': stamp,
                'record_modification_date': stamp,
            }
        )
    return records


def test_a_window_whose_cursor_goes_past_the_page_bound_is_asked_in_halves(
    spycloud, transport, lookup
):
    """Two records a page, two pages at most: 8 hours with 7 records (4 pages) is dropped after
    its 2 pages and asked in halves; the older half (5 records, 3 pages) in quarters."""
    until = now()
    since = until - datetime.timedelta(hours=8)
    spycloud.watchlist_records = hourly(until, 7.5, 7.0, 6.5, 5.5, 4.5, 3.5, 1.5)
    spycloud.page_size = 2
    windows = list(pull_changed(transport, lookup, since, until, SEVERITIES, page_bound=2))
    hour = datetime.timedelta(hours=1)
    assert [(w.since, w.until) for w in windows] == [
        (since, since + 2 * hour),
        (since + 2 * hour, since + 4 * hour),
        (since + 4 * hour, until),
    ]
    assert [sorted(r.document_id for r in w.records) for w in windows] == [
        ['r0', 'r1', 'r2'],
        ['r3', 'r4'],
        ['r5', 'r6'],
    ]
    assert all(len(w.records) <= 2 * 2 for w in windows)  # never more than the bound's pages
    calls = watchlist_calls(spycloud)
    firsts = [query_span(c) for c in calls if 'cursor' not in c['query']]
    assert firsts == [
        (since, until),
        (since, since + 4 * hour),
        (since, since + 2 * hour),
        (since + 2 * hour, since + 4 * hour),
        (since + 4 * hour, until),
    ]
    # 2 + 2 pages dropped, then 2 + 1 + 1 read; no retry
    assert len(calls) == lookup.stats.spycloud_calls == 8 and lookup.stats.retries == 0


def test_a_window_too_short_to_split_is_read_whole_past_the_bound(spycloud, transport, lookup):
    until = now()
    spycloud.watchlist_records = hourly(until, 0.1, 0.1, 0.1, 0.2, 0.2)
    spycloud.page_size = 1
    since = until - 2 * MIN_WINDOW + SECOND
    (window,) = pull_changed(transport, lookup, since, until, SEVERITIES, page_bound=1)
    assert sorted(r.document_id for r in window.records) == ['r0', 'r1', 'r2', 'r3', 'r4']
    assert len(watchlist_calls(spycloud)) == 5


@pytest.mark.parametrize(
    ('seconds', 'longest', 'expected'),
    [
        (0, 60, [(0, 0)]),  # a run in the checkpoint's own second: one empty window
        (59, 60, [(0, 59)]),
        (60, 60, [(0, 60)]),
        (61, 60, [(0, 30), (30, 61)]),
        (90 * 86400, 30 * 86400, [(0, 2592000), (2592000, 5184000), (5184000, 7776000)]),
        (7, 3, [(0, 2), (2, 4), (4, 7)]),
    ],
)
def test_spans_are_the_fewest_near_equal_windows_sharing_their_ends(seconds, longest, expected):
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def at(offset):
        return start + datetime.timedelta(seconds=offset)

    made = spans(at(0), at(seconds), datetime.timedelta(seconds=longest))
    assert made == [(at(a), at(b)) for a, b in expected]


def test_a_cursor_that_goes_round_stops_after_pages_with_nothing_new(
    spycloud, transport, lookup, caplog
):
    """A window too short to split has no page bound: a SpyCloud whose cursor keeps coming
    back with records already read would page until the run's hour-long deadline."""
    until = now()
    spycloud.watchlist_records = hourly(until, 0.1, 0.2)
    spycloud.page_size = 1
    again = {'cursor': 'round', 'hits': 2, 'results': hourly(until, 0.1)}
    spycloud.add_fault(200, match='cursor=', body=again)
    since = until - MIN_WINDOW
    with caplog.at_level('WARNING', logger='spycloud_relay.sync.pull'):
        (window,) = pull_changed(transport, lookup, since, until, SEVERITIES, page_bound=1)
    assert [r.document_id for r in window.records] == ['r0']
    assert len(watchlist_calls(spycloud)) == 1 + STALE_PAGES
    assert any('round: stopped after page 4' in r.getMessage() for r in caplog.records)


def test_a_page_of_repeats_between_new_ones_does_not_stop_the_window(spycloud, transport, lookup):
    """Repeats alone do not end paging: records a, a, b, c one a page all arrive."""
    until = now()
    records = hourly(until, 0.05, 0.1, 0.15)
    spycloud.watchlist_records = [records[0], records[0], records[1], records[2]]
    spycloud.page_size = 1
    (window,) = pull_changed(
        transport, lookup, until - MIN_WINDOW, until, SEVERITIES, page_bound=1_000
    )
    assert sorted(r.document_id for r in window.records) == ['r0', 'r1', 'r2']
    assert len(watchlist_calls(spycloud)) == 4
