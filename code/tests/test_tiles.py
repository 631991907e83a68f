"""The exposure dashboard over HTTP: every tile and period, the slicing, the cache, partial
answers and bad input. Each tile type's data is validated against a JSON Schema written from
the shapes of the XDR module surface spec (outside this repository), §4, and the counts
against a recount of the simulator's tenant."""

import datetime
import json
import logging
import re
from html import escape

import pytest

from simulator import tenant
from spycloud_relay.spycloud.records import STALE_PAGES
from spycloud_relay.tiles.aggregate import PERIODS
from support import period_windows, single_error, windowed_calls
from tile_contract import HOSTILE, SCHEMAS, TILE_IDS, TILE_SCHEMA, checked, rendered


@pytest.fixture
def relay(make_relay):
    """The limiter off, as in the benchmark's first run (the limiter's own tests are
    elsewhere): what is counted here are calls."""
    return make_relay(spycloud_rate_limit=0)


def post(relay, path, body, **claims):
    response = relay.post(path, body, **claims)
    assert response.status_code == 200, response.text
    return response.json()


def tile_data(relay, tile_id, period='last_7_days'):
    body = post(relay, '/tiles/tile-data', {'tile_id': tile_id, 'period': period})
    assert 'data' in body, body
    return body


def watchlist_calls(spycloud):
    return [c for c in spycloud.request_log if c['endpoint'] == 'watchlist-records']


def recount(period):
    """The tenant's records in the period, counted here, independently of the relay."""
    now = datetime.datetime.now(datetime.UTC)
    start = now - PERIODS[period]
    records = [
        r
        for records in tenant.records_by_day(now.date()).values()
        for r in records
        if start
        <= datetime.datetime.fromisoformat(r['spycloud_publish_date'].replace('Z', '+00:00'))
        <= now
    ]
    machines = {r['infected_machine_id'] for r in records if r['severity'] >= 25}
    return {
        'Exposed accounts': len({r['email'] for r in records}),
        'New exposure records': len(records),
        'Infostealer infections': len(machines),
        'Plaintext passwords exposed': sum(1 for r in records if r.get('password_plaintext')),
    }


def test_the_tiles_are_listed_and_each_can_be_asked_for(relay):
    tiles = post(relay, '/tiles', {})['data']
    # the watchlist's tiles, then Compass's (tests/test_device_tile.py)
    assert [t['id'] for t in tiles][: len(TILE_IDS)] == TILE_IDS
    for tile in tiles:
        checked(TILE_SCHEMA, tile)
        assert tile['default_period'] == 'last_7_days'
        assert post(relay, '/tiles/tile', {'tile_id': tile['id']}) == {'data': tile}


@pytest.mark.parametrize('period', list(PERIODS))
@pytest.mark.parametrize('tile_id', TILE_IDS)
def test_every_tile_and_period_validates(relay, tile_id, period):
    kind = next(t['type'] for t in post(relay, '/tiles', {})['data'] if t['id'] == tile_id)
    doc = tile_data(relay, tile_id, period)['data']
    checked(SCHEMAS[kind], doc)
    start = datetime.datetime.fromisoformat(doc['observed_time']['start_time'][:-1])
    end = datetime.datetime.fromisoformat(doc['observed_time']['end_time'][:-1])
    assert end - start == PERIODS[period]
    assert doc['cache_scope'] == 'org'
    valid = [doc['valid_time'][k] for k in ('start_time', 'end_time')]
    assert valid[0] < valid[1]


@pytest.mark.parametrize('period', ['last_7_days', 'last_90_days'])
def test_the_summary_counts_the_tenant(relay, period):
    doc = tile_data(relay, 'spycloud-exposure-summary', period)['data']
    assert {m['label']: m['value'] for m in doc['data']} == recount(period)


def test_the_bars_and_the_donut_add_up(relay):
    total = recount('last_30_days')['New exposure records']
    bars = tile_data(relay, 'spycloud-exposures-per-day', 'last_30_days')['data']
    assert len(bars['data']) == 31 and sum(b['value'] for b in bars['data']) == total
    assert all(b['value'] == sum(v['value'] for v in b['values']) for b in bars['data'])
    weeks = tile_data(relay, 'spycloud-exposures-per-day', 'last_90_days')['data']
    assert len(weeks['data']) == 13 and weeks['data'][0]['label'].startswith('Week of ')
    donut = tile_data(relay, 'spycloud-exposures-by-severity', 'last_30_days')['data']
    assert sum(d['value'] for d in donut['data']) == total
    assert all(d['value'] == sum(s['value'] for s in d['segments']) for d in donut['data'])
    assert donut['labels'][1] == ['Corporate credentials', 'Infected users']


def test_the_markdown_tiles_name_accounts_and_sources_never_secrets(relay):
    accounts = tile_data(relay, 'spycloud-most-exposed-accounts', 'last_90_days')['data']
    sources = tile_data(relay, 'spycloud-newest-breach-sources', 'last_90_days')['data']
    assert accounts['data'][0].startswith('| Account | Records |')
    assert len(accounts['data']) == 2 + 10
    assert '| admin@example.org |' in accounts['data'][2]
    assert any('](https://portal.spycloud.com/breach/catalog/' in line for line in sources['data'])
    text = json.dumps([accounts, sources])
    for records in tenant.records_by_day(datetime.datetime.now(datetime.UTC).date()).values():
        for record in records[:50]:
            for name in ('password', 'password_plaintext'):
                assert not record.get(name) or record[name] not in text


def first_pages(spycloud, with_status=False):
    """(since, until) of each watchlist window asked, in the order asked (follow-up pages,
    which carry a cursor, left out), and the status SpyCloud answered when asked."""
    return [
        (c['query']['since'][0], c['query']['until'][0], *([c['status']] if with_status else []))
        for c in watchlist_calls(spycloud)
        if 'cursor' not in c['query']
    ]


def asked(first, last):
    """A window as the relay asks it: until the day after its last day."""
    return (first.isoformat(), (last + datetime.timedelta(days=1)).isoformat())


def today():
    return datetime.datetime.now(datetime.UTC).date()


def test_the_period_is_fetched_in_windows_at_once(make_relay, spycloud):
    relay = make_relay(spycloud_max_workers=3, spycloud_rate_limit=0)
    spycloud.latency = 0.05
    tile_data(relay, 'spycloud-exposure-summary', 'last_90_days')
    assert len(watchlist_calls(spycloud)) == windowed_calls('last_90_days')
    windows = period_windows('last_90_days')
    assert [(last - first).days + 1 for first, last in windows] == [23, 23, 23, 22]
    assert sorted(first_pages(spycloud)) == [asked(*w) for w in windows]
    assert 1 < spycloud.stats()['max_in_flight'] <= 3  # concurrent, within the bound


@pytest.mark.parametrize('period', list(PERIODS))
def test_a_cold_period_costs_the_pages_of_its_windows(relay, spycloud, period):
    """Counted from the simulator's tenant: 1 call for 24 hours or 7 days, 3 for 30 days, 11
    for 90 days at the time of writing (the tenant has the same shape on every day)."""
    doc = tile_data(relay, 'spycloud-exposure-summary', period)['data']
    assert {m['label']: m['value'] for m in doc['data']} == recount(period)
    assert len(watchlist_calls(spycloud)) == windowed_calls(period)
    assert windowed_calls(period) <= (3 if period in ('last_24_hours', 'last_7_days') else 15)


def test_a_day_of_many_pages_is_paged(relay, spycloud):
    spycloud.page_size = 7
    doc = tile_data(relay, 'spycloud-exposure-summary', 'last_7_days')['data']
    assert {m['label']: m['value'] for m in doc['data']} == recount('last_7_days')
    assert any('cursor' in c['query'] for c in watchlist_calls(spycloud))


def test_windows_split_down_to_days_under_the_gateways_limit(relay, spycloud):
    spycloud.watchlist_max_days = 1  # a longer window answers 504
    doc = tile_data(relay, 'spycloud-exposure-summary', 'last_30_days')['data']
    assert {m['label']: m['value'] for m in doc['data']} == recount('last_30_days')
    timed_out = [c for c in watchlist_calls(spycloud) if c['status'] == 504]
    # 31 days: 2 windows, then 4, 8 and 15 of two days (and a day), each asked once (a
    # window's 504 is not retried: the split is the retry).
    assert len(timed_out) == 2 + 4 + 8 + 15


def test_a_504_split_is_remembered_for_the_next_gathering(make_relay, spycloud):
    """A cold 90 days under a gateway that times out past 10 days: complete, and what it
    learnt is kept for the key: the next cold gatherings (no tile cache here) ask windows a
    day shorter than the shortest that timed out, never one SpyCloud times out, and do not
    grow back into the 504s."""
    relay = make_relay(spycloud_rate_limit=0, tile_cache_ttl_s=0)
    spycloud.watchlist_max_days = 10
    for gathering in ('first', 'second', 'third'):
        spycloud.reset_stats()
        body = tile_data(relay, 'spycloud-exposure-summary', 'last_90_days')
        assert 'errors' not in body, body
        counts = {m['label']: m['value'] for m in body['data']['data']}
        assert counts == recount('last_90_days'), gathering
        statuses = [c['status'] for c in watchlist_calls(spycloud)]
        assert (504 in statuses) == (gathering == 'first'), (gathering, statuses)
        if gathering == 'first':
            timed_out = [
                (datetime.date.fromisoformat(until) - datetime.date.fromisoformat(since)).days
                for since, until, status in first_pages(spycloud, with_status=True)
                if status == 504
            ]
            # a window's until is the day after its last: its length in days is until - since
            ceiling = min(timed_out)
            continue
        asked = first_pages(spycloud)
        lengths = {
            (datetime.date.fromisoformat(until) - datetime.date.fromisoformat(since)).days
            for since, until in asked
        }
        assert max(lengths) <= ceiling - 1, (gathering, lengths)
        assert len(asked) == len(period_windows('last_90_days', ceiling - 1)), gathering


def test_one_gathering_serves_every_tile_of_a_period(relay, spycloud):
    for tile_id in TILE_IDS:
        tile_data(relay, tile_id, 'last_30_days')
    first = len(spycloud.request_log)
    month = windowed_calls('last_30_days')
    assert len(watchlist_calls(spycloud)) == month
    for tile_id in TILE_IDS:
        tile_data(relay, tile_id, 'last_30_days')
    assert len(spycloud.request_log) == first  # warm: no SpyCloud call at all
    tile_data(relay, TILE_IDS[0], 'last_7_days')
    week = windowed_calls('last_7_days')
    assert len(watchlist_calls(spycloud)) == month + week  # another period, another gathering


def test_no_cache_when_the_ttl_is_zero(make_relay, spycloud):
    relay = make_relay(tile_cache_ttl_s=0, spycloud_rate_limit=0)
    tile_data(relay, TILE_IDS[0], 'last_24_hours')
    tile_data(relay, TILE_IDS[0], 'last_24_hours')
    assert len(watchlist_calls(spycloud)) == 2 * windowed_calls('last_24_hours')


def test_a_day_that_fails_gives_a_partial_dashboard_that_says_so(relay, spycloud):
    """The window holding the day that times out is split down to that day, which is retried
    as any call and then missing; the other days arrive."""
    ((first, _),) = period_windows('last_7_days')
    spycloud.add_fault(504, match=f'since={first.isoformat()}')
    body = tile_data(relay, 'spycloud-most-exposed-accounts', 'last_7_days')
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'incomplete'
    assert 'The records of 1 of 8 days of the period did not arrive' in warning['message']
    assert body['data']['data'][-1].startswith('*Partial: the records of 1 of 8 days')
    assert first_pages(spycloud).count(asked(first, first)) == 4  # a day's 504: 3 retries
    spycloud.clear_faults()
    again = tile_data(relay, 'spycloud-most-exposed-accounts', 'last_7_days')
    assert 'errors' not in again  # the partial picture was not kept


def test_a_day_whose_paging_goes_round_is_stopped_and_says_so(relay, spycloud):
    """Days are read whole (no page bound): a day whose cursor keeps coming back with nothing
    new is stopped after STALE_PAGES such pages, and is a missing day, not a deadline."""
    spycloud.watchlist_max_days = 1  # every window of the week splits down to its days
    spycloud.page_size = 1
    day = today() - datetime.timedelta(days=3)
    round_page = {'cursor': 'round', 'hits': 2, 'results': []}
    spycloud.add_fault(200, match=f'(?=.*since={day.isoformat()})(?=.*cursor=)', body=round_page)
    body = tile_data(relay, 'spycloud-most-exposed-accounts', 'last_7_days')
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'incomplete', warning
    assert 'The records of 1 of 8 days of the period did not arrive' in warning['message']
    assert f'watchlist records of {day.isoformat()} brought no new record' in warning['message']
    round_pages = [
        c
        for c in watchlist_calls(spycloud)
        if 'cursor' in c['query'] and c['query']['since'] == [day.isoformat()]
    ]
    assert len(round_pages) == STALE_PAGES
    spycloud.clear_faults()
    again = tile_data(relay, 'spycloud-most-exposed-accounts', 'last_7_days')
    assert 'errors' not in again  # the partial picture was not kept


def test_a_window_that_fails_gives_a_partial_dashboard_naming_its_days(relay, spycloud):
    failing = period_windows('last_90_days')[1]
    spycloud.add_fault(500, match=f'since={failing[0].isoformat()}')
    body = tile_data(relay, 'spycloud-newest-breach-sources', 'last_90_days')
    (warning,) = body['errors']
    assert warning['code'] == 'incomplete' and 'SpyCloud internal error' in warning['message']
    assert 'The records of 23 of 91 days of the period did not arrive' in warning['message']
    assert body['data']['data'][-1].startswith('*Partial: the records of 23 of 91 days')
    spycloud.clear_faults()
    spycloud.reset_stats()
    again = tile_data(relay, 'spycloud-newest-breach-sources', 'last_90_days')
    assert 'errors' not in again and watchlist_calls(spycloud)  # gathered again: not kept


@pytest.mark.parametrize(
    'fault',
    [
        dict(status=403, headers={'SpyCloud-Error': 'Invalid IP 1.2.3.4'}),
        dict(status=403, body={'message': 'This API key has no Employee ATO licence'}),
        dict(status=401),
    ],
)
def test_a_refused_key_is_the_error_envelope(relay, spycloud, fault):
    spycloud.add_fault(match='watchlist', **fault)
    body = post(relay, '/tiles/tile-data', {'tile_id': TILE_IDS[0], 'period': 'last_7_days'})
    assert list(body) == ['errors']
    assert body['errors'][0]['code'] in ('authorization error', 'permission denied')


def test_nothing_arriving_is_the_error_envelope(relay, spycloud):
    spycloud.add_fault(500, match='watchlist')
    body = post(relay, '/tiles/tile-data', {'tile_id': TILE_IDS[0], 'period': 'last_24_hours'})
    assert list(body) == ['errors'] and body['errors'][0]['code'] == 'internal error'


@pytest.mark.parametrize(
    'path, body, fragment',
    [
        ('/tiles/tile', {'tile_id': 'nope'}, 'Unknown tile_id'),
        ('/tiles/tile', {'tile_id': '  '}, 'needs a tile_id'),
        ('/tiles/tile', {}, 'needs a tile_id'),
        ('/tiles/tile-data', {'tile_id': 7}, '"tile_id": ["Must be a string."]'),
        ('/tiles/tile-data', {'tile_id': TILE_IDS[0], 'period': 'last_year'}, 'Unknown period'),
        ('/tiles/tile-data', [TILE_IDS[0]], 'must be a JSON object'),
        ('/tiles/tile', 'not json', 'must be a JSON object'),
    ],
)
def test_bad_input_is_an_invalid_argument(relay, spycloud, path, body, fragment):
    raw = body if isinstance(body, str) else json.dumps(body)
    answer = relay.post(path, data=raw).json()
    (error,) = answer['errors']
    assert error['code'] == 'invalid argument' and fragment in error['message']
    assert spycloud.stats()['requests'] == 0


NOT_STRINGS = pytest.mark.parametrize(
    'value', [['last_7_days'], {'period': 'last_7_days'}, 7, None], ids=str
)


@NOT_STRINGS
@pytest.mark.parametrize(
    'path, field',
    [('/tiles/tile', 'tile_id'), ('/tiles/tile-data', 'tile_id'), ('/tiles/tile-data', 'period')],
)
def test_a_field_that_is_not_a_string_is_an_invalid_argument(relay, spycloud, path, field, value):
    body = {'tile_id': TILE_IDS[0], 'period': 'last_7_days', field: value}
    error = single_error(relay.post(path, body), 'invalid argument')
    assert f'"{field}": ["Must be a string' in error['message'], error
    assert spycloud.stats()['requests'] == 0


def test_the_default_period_is_seven_days(relay, spycloud):
    tile_data_body = post(relay, '/tiles/tile-data', {'tile_id': TILE_IDS[0]})
    doc = checked(SCHEMAS['metric_group'], tile_data_body['data'])
    assert {m['label']: m['value'] for m in doc['data']} == recount('last_7_days')


def test_a_token_is_needed(relay):
    for path in ('/tiles', '/tiles/tile', '/tiles/tile-data'):
        answer = relay.post(path, {}, token='bad').json()
        assert answer['errors'][0]['code'] == 'authorization error'


def test_an_aggregate_survives_its_json_form():
    """What a shared store keeps is the aggregate's JSON form: it must come back the same."""
    from spycloud_relay.spycloud.models import BreachRecord
    from spycloud_relay.tiles.aggregate import Aggregate, Period

    now = datetime.datetime.now(datetime.UTC)
    aggregate = Aggregate(Period.ending('last_7_days', now))
    for records in list(tenant.records_by_day(now.date()).values())[:8]:
        for raw in records:
            record = BreachRecord.from_api(raw)
            aggregate.add(record, record.published.date())
    again = Aggregate.from_json(json.loads(json.dumps(aggregate.to_json())))
    assert again.to_json() == aggregate.to_json() and aggregate.records > 0
    assert again.most_exposed() == aggregate.most_exposed()
    assert again.newest_sources() == aggregate.newest_sources()


# -- what SpyCloud sends is data, never markup or an error ----------------------------------

SOURCE = 90_001
PORTAL = 'https://portal.spycloud.com/breach/catalog/'


def watchlist_record(document_id, days_ago=1, **fields):
    """A raw watchlist record published ``days_ago`` days before today (UTC), in every period
    but the last 24 hours."""
    day = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=days_ago)
    return {
        'document_id': document_id,
        'source_id': SOURCE,
        'spycloud_publish_date': f'{day.isoformat()}T00:00:00Z',
        'severity': 20,
        'email': 'ana@example.org',
        **fields,
    }


def test_spycloud_strings_are_text_in_the_markdown_tiles(relay, spycloud):
    spycloud.watchlist_records = [
        watchlist_record(f'h{i}', email=f'{text}@example.org', source_id=SOURCE + i)
        for i, text in enumerate(HOSTILE)
    ]
    spycloud.catalog_overrides = {
        SOURCE + i: {'title': text, 'uuid': text, 'site': text} for i, text in enumerate(HOSTILE)
    }
    spycloud.catalog_overrides[SOURCE] = {'title': HOSTILE[0], 'uuid': 'ab12-cd34'}
    for tile_id in ('spycloud-most-exposed-accounts', 'spycloud-newest-breach-sources'):
        lines = tile_data(relay, tile_id)['data']['data']
        html = rendered(lines)
        assert '<img' not in html and '<script' not in html, html
        assert re.findall(r'href="([^"]*)"', html) in ([], [PORTAL + 'ab12-cd34']), html
        for text in HOSTILE[:4]:  # shown as the text it is
            assert html.count(escape(text, quote=False)) >= 1, (text, html)


def summary_counts(relay):
    body = tile_data(relay, 'spycloud-exposure-summary')
    assert 'errors' not in body, body
    return {m['label']: m['value'] for m in body['data']['data']}


@pytest.mark.parametrize(
    'odd, machines',
    [
        (7, {'machine-a', '7'}),  # a number beside strings: read as the string '7'
        (7.5, {'machine-a', '7.5'}),
        (['machine-b'], {'machine-a'}),  # no id: the record counts, its machine does not
        ({'id': 'machine-c'}, {'machine-a'}),
        (True, {'machine-a'}),
    ],
)
def test_odd_field_types_are_read_not_an_error(relay, spycloud, odd, machines):
    spycloud.watchlist_records = [
        watchlist_record('m1', severity=25, infected_machine_id='machine-a'),
        watchlist_record('m2', severity=25, infected_machine_id=odd),
        watchlist_record('m3', severity=25, infected_machine_id='7'),
        watchlist_record('m4', email=['x@example.org'], source_id='abc', severity='high'),
        watchlist_record('m5', password_type=3, password_plaintext={'x': 1}, email=7),
    ]
    counts = summary_counts(relay)
    assert counts['New exposure records'] == 5
    assert counts['Infostealer infections'] == len(machines | {'7'})
    assert counts['Exposed accounts'] == 1  # ana@example.org; a list or a number is no account
    assert counts['Plaintext passwords exposed'] == 0  # an object is no password
    for tile_id in TILE_IDS:
        body = tile_data(relay, tile_id)
        assert 'errors' not in body, body


def test_a_record_is_counted_once_however_often_it_is_sent(relay, spycloud):
    """SpyCloud may repeat a record on a later page; the day slices meet at midnight, so a
    record published then is in two of them."""
    spycloud.page_size = 1
    spycloud.watchlist_records = [
        watchlist_record('d1', days_ago=2),
        watchlist_record('d2', days_ago=2, email='ben@example.org'),
        watchlist_record('d1', days_ago=2),  # on page 3 of the day: the same record again
        watchlist_record('d2', days_ago=2, email='ben@example.org'),
    ]
    counts = summary_counts(relay)
    assert counts['New exposure records'] == 2 and counts['Exposed accounts'] == 2
    assert len(watchlist_calls(spycloud)) == 4  # the window was paged, a record a page
    lines = tile_data(relay, 'spycloud-most-exposed-accounts')['data']['data']
    assert [line.split(' | ')[1] for line in lines[2:]] == ['1', '1']  # records per account


def two_a_day(days_ago):
    """Two records on each of the days ``days_ago``, in that order."""
    return [
        watchlist_record(f'b{ago}-{n}', days_ago=ago, email=f'b{ago}-{n}@example.org')
        for ago in days_ago
        for n in range(2)
    ]


@pytest.mark.parametrize('newest_first', [True, False])
def test_a_window_paging_beyond_the_bound_is_split(make_relay, spycloud, newest_first):
    """Two records a page, two pages a window: the 8-day window of the week stops after
    its first two pages. Sent newest first (SpyCloud's order), only its days up to the
    oldest one read are asked again; in another order, all of it."""
    relay = make_relay(spycloud_rate_limit=0, watchlist_window_pages=2)
    spycloud.page_size = 2
    ages = [1, 2, 3, 4, 5, 6]
    spycloud.watchlist_records = two_a_day(ages if newest_first else ages[::-1])
    counts = summary_counts(relay)
    assert counts['New exposure records'] == counts['Exposed accounts'] == 12
    week = today() - datetime.timedelta(days=7), today()
    pages = first_pages(spycloud)
    assert pages[0] == asked(*week) and len(watchlist_calls(spycloud)) > 2
    newest_asked_again = max(until for _, until in pages[1:])
    if newest_first:  # read: days 1 and 2 ago; asked again: up to 2 days ago, in halves
        two_ago = today() - datetime.timedelta(days=2)
        assert newest_asked_again == (two_ago + datetime.timedelta(days=1)).isoformat()
        assert asked(week[0], week[0] + datetime.timedelta(days=2)) in pages
    else:  # read: days 6 and 5 ago, in the wrong order: the whole window again, in halves
        assert newest_asked_again == asked(*week)[1]
        assert asked(week[0], week[0] + datetime.timedelta(days=3)) in pages


REFUSED = {'errorType': 'BadRequest', 'errorMessage': "[BadRequest] Invalid parameter: 'since'."}


def unexpected(caplog):
    return [r for r in caplog.records if r.levelno >= logging.ERROR or 'traceback' in r.__dict__]


def test_a_window_spycloud_refuses_is_a_warning_not_an_internal_error(relay, spycloud, caplog):
    caplog.set_level(logging.INFO)
    day = period_windows('last_90_days')[2][0].isoformat()
    spycloud.add_fault(400, match=f'since={day}', body=REFUSED)
    body = tile_data(relay, 'spycloud-most-exposed-accounts', 'last_90_days')
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'incomplete', warning
    assert 'of 23 of 91 days' in warning['message'] and 'refused' in warning['message']
    assert "Invalid parameter: 'since'" in warning['message']
    assert body['data']['data'][-1].startswith('*Partial: the records of 23 of 91 days')
    assert not unexpected(caplog)
    (logged,) = [r for r in caplog.records if r.levelno == logging.WARNING and day in r.message]
    assert 'refused' in logged.message and "'since'" in logged.detail


def test_a_period_spycloud_refuses_whole_says_so(relay, spycloud, caplog):
    """Nothing arrived, so no count can be shown: zeros would read as "no exposure"."""
    caplog.set_level(logging.INFO)
    spycloud.add_fault(400, match='watchlist', body=REFUSED)
    body = post(relay, '/tiles/tile-data', {'tile_id': TILE_IDS[0], 'period': 'last_7_days'})
    assert list(body) == ['errors'], body
    (error,) = body['errors']
    assert error['type'] == 'fatal' and error['code'] == 'invalid argument', error
    assert 'none of the 8 days' in error['message'] and "'since'" in error['message']
    assert not unexpected(caplog)
