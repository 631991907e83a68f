"""The infected-devices tiles over HTTP: listed beside the exposure tiles, their data per period
derived from the simulator's tenant and Compass (simulator/tenant.py, simulator/compass.py),
the calls a cold and a warm period cost, no Compass licence, failures, and no secret.
Validated against the tile schemas test_tiles.py writes from the XDR module surface spec."""

import datetime
import json
import math

import pytest

from simulator import compass, data, tenant
from spycloud_relay.spycloud.compass_devices import MAX_PAGES
from spycloud_relay.tiles.aggregate import PERIODS
from support import settled_today, windowed_calls
from tile_contract import HOSTILE, SCHEMAS, TILE_IDS, TILE_SCHEMA, checked, rendered

SUMMARY, NEWEST = 'spycloud-infected-devices-summary', 'spycloud-infected-devices'
DEVICE_TILES = [SUMMARY, NEWEST]
ENDPOINT = 'compass-devices'


@pytest.fixture
def relay(make_relay):
    return make_relay(spycloud_rate_limit=0)


def post(relay, path, body):
    response = relay.post(path, body)
    assert response.status_code == 200, response.text
    return response.json()


def tile_data(relay, tile_id, period='last_7_days'):
    return post(relay, '/tiles/tile-data', {'tile_id': tile_id, 'period': period})


def device_calls(spycloud):
    return [c for c in spycloud.request_log if c['endpoint'] == ENDPOINT]


def stamp(text):
    return datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))


def infostealer_records():
    return [r for r in tenant.select(settled_today(), None, None) if r['severity'] >= 25]


def expected(period):
    """The devices of the period, worked out here: the tenant's machines with an infostealer
    record published within it, newest infection first, as Compass describes each."""
    now = datetime.datetime.now(datetime.UTC)
    start, newest = now - PERIODS[period], {}
    for record in infostealer_records():
        if start <= stamp(record['spycloud_publish_date']) <= now:
            machine = record['infected_machine_id']
            newest[machine] = max(newest.get(machine, ''), record['spycloud_publish_date'])
    devices = []
    for machine, published in newest.items():
        facts = compass.profile(machine)
        apps = len({r['target_domain'] for r in compass.records(machine)})
        devices.append((facts['infected_time'], published, machine, facts, apps))
    devices.sort(reverse=True)
    return start, now, devices


def row(device):
    infected, published, machine, facts, apps = device
    when = stamp(infected).strftime('%Y-%m-%d %H:%M UTC')
    return (
        f'| {facts["user_hostname"]} | {", ".join(facts["ip_addresses"])} | {facts["user_os"]} '
        f'| {apps} | {when} | {published[:10]} |'
    )


def window_devices(period):
    """The machines ``compass/devices`` lists for the days the relay asks (the period's first
    day to the day after its last): the pages of a cold gathering."""
    now = datetime.datetime.now(datetime.UTC)
    since = datetime.datetime.combine((now - PERIODS[period]).date(), datetime.time())
    until = datetime.datetime.combine(now.date() + datetime.timedelta(days=1), datetime.time())
    return {
        r['infected_machine_id']
        for r in tenant.select(now.date(), since, until)
        if r['severity'] >= 25
    }


def test_the_device_tiles_are_listed_beside_the_others(relay):
    tiles = post(relay, '/tiles', {})['data']
    assert [t['id'] for t in tiles] == TILE_IDS + DEVICE_TILES
    for tile in tiles[len(TILE_IDS) :]:
        checked(TILE_SCHEMA, tile)
        assert post(relay, '/tiles/tile', {'tile_id': tile['id']}) == {'data': tile}
        assert tile['periods'] == list(PERIODS)


@pytest.mark.parametrize('period', list(PERIODS))
def test_each_period_shows_exactly_the_tenants_devices(relay, spycloud, period):
    settled_today()
    summary = tile_data(relay, SUMMARY, period)
    table = tile_data(relay, NEWEST, period)
    start, end, devices = expected(period)
    assert 'errors' not in summary and 'errors' not in table, (summary, table)
    checked(SCHEMAS['metric_group'], summary['data'])
    checked(SCHEMAS['markdown'], table['data'])
    within = sum(1 for d in devices if start <= stamp(d[0]) <= end)
    assert {m['label']: m['value'] for m in summary['data']['data']} == {
        'Infected devices': len(devices),
        'Applications exposed': sum(d[4] for d in devices),
        'Infected within the period': within,
    }
    assert devices  # the tenant has infected machines in every period
    lines = table['data']['data']
    assert lines[0].startswith(f'**{len(devices)} infected device(s)**')
    rows = [line for line in lines if line.startswith('| DESKTOP-')]
    assert rows == [row(d) for d in devices[:10]]  # newest infection first, ten at most
    assert len(device_calls(spycloud)) == 1  # both tiles: one gathering of one page


@pytest.mark.parametrize('period', ['last_7_days', 'last_90_days'])
def test_the_devices_are_the_summary_tiles_infections(relay, period):
    """Two sources, one count: the exposure summary's machines of severity 25+ records."""
    settled_today()
    exposure = tile_data(relay, 'spycloud-exposure-summary', period)['data']['data']
    devices = tile_data(relay, SUMMARY, period)['data']['data']
    infections = {m['label']: m['value'] for m in exposure}['Infostealer infections']
    assert {m['label']: m['value'] for m in devices}['Infected devices'] == infections


def test_cold_pages_then_warm_costs_nothing(relay, spycloud):
    settled_today()
    spycloud.page_size = 50
    tile_data(relay, NEWEST, 'last_30_days')
    cold = len(device_calls(spycloud))
    assert cold == max(1, math.ceil(len(window_devices('last_30_days')) / 50)) and cold > 1
    assert [bool(c['query'].get('cursor')) for c in device_calls(spycloud)][:2] == [False, True]
    query = device_calls(spycloud)[0]['query']
    now = datetime.datetime.now(datetime.UTC)
    assert query['since'] == [(now - PERIODS['last_30_days']).date().isoformat()]
    assert query['until'] == [(now.date() + datetime.timedelta(days=1)).isoformat()]
    spycloud.reset_stats()
    for tile_id in DEVICE_TILES:
        tile_data(relay, tile_id, 'last_30_days')
    assert spycloud.request_log == []  # warm: no SpyCloud call at all


def test_the_device_and_watchlist_gatherings_are_apart(relay, spycloud):
    tile_data(relay, NEWEST, 'last_7_days')
    assert {c['endpoint'] for c in spycloud.request_log} == {ENDPOINT}
    spycloud.reset_stats()
    tile_data(relay, TILE_IDS[0], 'last_7_days')
    assert ENDPOINT not in {c['endpoint'] for c in spycloud.request_log}


def test_no_compass_licence_is_a_tile_that_says_so(relay, spycloud):
    spycloud.compass_denied = {data.DEFAULT_API_KEY}
    table = tile_data(relay, NEWEST)
    summary = tile_data(relay, SUMMARY)
    for body in (table, summary):
        (warning,) = body['errors']
        assert warning['type'] == 'warning' and warning['code'] == 'permission denied'
        assert 'no Compass licence' in warning['message']
    checked(SCHEMAS['markdown'], table['data'])
    checked(SCHEMAS['metric_group'], summary['data'])
    assert 'no Compass licence' in table['data']['data'][0]
    assert summary['data']['data'] == []
    assert [c['status'] for c in device_calls(spycloud)] == [403]  # remembered: asked once
    assert 'errors' not in tile_data(relay, TILE_IDS[0])  # the watchlist tiles answer


def test_a_failing_compass_is_the_error_envelope(relay, spycloud):
    spycloud.add_fault(500, match='compass/devices')
    body = tile_data(relay, NEWEST)
    assert list(body) == ['errors'] and body['errors'][0]['code'] == 'internal error', body
    assert 'errors' not in tile_data(relay, TILE_IDS[0])
    spycloud.clear_faults()
    assert 'errors' not in tile_data(relay, NEWEST)  # the failure was not kept


def test_a_refused_ip_is_the_error_envelope_not_the_no_licence_tile(relay, spycloud):
    spycloud.add_fault(
        403, match='compass/devices', headers={'SpyCloud-Error': 'Invalid IP 1.2.3.4'}
    )
    body = tile_data(relay, NEWEST)
    assert list(body) == ['errors'] and body['errors'][0]['code'] == 'authorization error', body


def test_a_hanging_compass_ends_at_the_deadline(make_relay, spycloud):
    relay = make_relay(spycloud_rate_limit=0, lookup_deadline_s=1.0)
    spycloud.add_fault(mode='hang', match='compass/devices', delay=30)
    body = tile_data(relay, SUMMARY)
    assert list(body) == ['errors'], body
    assert body['errors'][0]['code'] == 'deadline exceeded', body


def test_a_failed_later_page_is_a_partial_tile_not_kept(relay, spycloud):
    settled_today()
    spycloud.page_size = 50
    spycloud.add_fault(500, match='cursor=')
    body = tile_data(relay, NEWEST, 'last_30_days')
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'incomplete', warning
    assert 'page 2' in warning['message']
    assert body['data']['data'][-1].startswith('*Partial: ')
    assert body['data']['data'][0].startswith('**50 infected device(s)**')
    spycloud.clear_faults()
    again = tile_data(relay, NEWEST, 'last_30_days')
    assert 'errors' not in again  # gathered again: the partial picture was not kept


def test_a_period_beyond_the_page_bound_counts_its_first_pages_and_says_so(relay, spycloud):
    settled_today()
    spycloud.page_size = 5  # the 90 days' devices: far more than MAX_PAGES pages of 5
    body = tile_data(relay, SUMMARY, 'last_90_days')
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'too many records', warning
    assert len(device_calls(spycloud)) == MAX_PAGES
    counts = {m['label']: m['value'] for m in body['data']['data']}
    assert counts['Infected devices'] == 5 * MAX_PAGES  # the newest published: all in the period
    spycloud.reset_stats()
    again = tile_data(relay, NEWEST, 'last_90_days')  # kept: the same pages would stop again
    assert device_calls(spycloud) == []
    assert [e['code'] for e in again['errors']] == ['too many records']
    assert again['data']['data'][0].startswith(f'**{5 * MAX_PAGES} infected device(s)**')


def test_no_secret_in_the_device_tiles(relay, spycloud):
    text = json.dumps([tile_data(relay, t, 'last_90_days') for t in DEVICE_TILES])
    secrets = set()
    for record in infostealer_records():
        secrets.update(record[n] for n in ('password', 'password_plaintext', 'email'))
        secrets.add(record['target_url'])
    for machine in {r['infected_machine_id'] for r in infostealer_records()}:
        for record in compass.records(machine)[:3]:
            secrets.update(record[n] for n in ('password', 'cookie_value', 'email') if n in record)
    secrets.discard('********')
    assert len(secrets) > 100
    assert not [s for s in secrets if s in text]
    assert 'sessionid' not in text and 'infected_machine_id' not in text


def summary_of(machine, **fields):
    """A ``compass/devices`` entry published yesterday (in every period but the last 24
    hours)."""
    day = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)
    return {
        'infected_machine_id': machine,
        'application_count': 3,
        'ip_addresses': ['198.51.100.7'],
        'spycloud_publish_date': f'{day.isoformat()}T00:00:00Z',
        'user_os': 'Windows 11 Pro x64',
        'user_hostname': 'LAPTOP-1',
        'infected_time': '2026-01-02T03:04:05Z',
        **fields,
    }


def test_what_compass_sends_is_text_and_odd_fields_are_read(relay, spycloud):
    entries = [
        summary_of(f'm{i}', user_os=text, user_hostname=text, ip_addresses=[text])
        for i, text in enumerate(HOSTILE)
    ]
    entries += [
        summary_of('masked', user_hostname='********', application_count='7'),
        summary_of(7, user_hostname='NOT-AN-ID'),  # no usable machine id: left out
        summary_of(
            'odd',
            user_hostname=None,
            application_count=True,
            ip_addresses='198.51.100.9',
            infected_time=5,
        ),
        'not an object',
    ]
    spycloud.add_fault(200, match='compass/devices', body={'cursor': '', 'results': entries})
    body = tile_data(relay, NEWEST)
    assert 'errors' not in body, body
    lines = body['data']['data']
    html = rendered(lines)
    assert '<img' not in html and '<script' not in html and 'href' not in html, html
    assert lines[0].startswith(f'**{len(HOSTILE) + 2} infected device(s)**')
    assert '| machine masked | 198.51.100.7 |' in '\n'.join(lines)
    assert 'NOT-AN-ID' not in html
    (odd,) = [line for line in lines if line.startswith('| machine odd |')]
    assert odd.split(' | ')[1:4] == ['—', 'Windows 11 Pro x64', '—']  # no IPs, no count


def test_every_tile_at_once_costs_one_gathering_of_each(make_relay, spycloud):
    import threading

    relay = make_relay(spycloud_rate_limit=0)
    spycloud.latency = 0.05  # a gathering lasts long enough for the tiles to meet
    asks = (TILE_IDS + DEVICE_TILES) * 2
    start, answers = threading.Barrier(len(asks)), [None] * len(asks)

    def ask(index, tile_id):
        start.wait()
        answers[index] = tile_data(relay, tile_id, 'last_30_days')

    threads = [threading.Thread(target=ask, args=pair) for pair in enumerate(asks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(a is not None and 'errors' not in a for a in answers), answers
    assert len(device_calls(spycloud)) == 1
    assert len([c for c in spycloud.request_log if c['endpoint'] == 'watchlist-records']) == (
        windowed_calls('last_30_days')
    )


def test_a_picture_in_redis_serves_another_replica(make_relay, spycloud, fresh_redis):
    first, second = (make_relay(spycloud_rate_limit=0, redis_url=fresh_redis.url) for _ in range(2))
    cold = tile_data(first, NEWEST, 'last_90_days')
    assert len(device_calls(spycloud)) == 1
    spycloud.reset_stats()
    warm = tile_data(second, NEWEST, 'last_90_days')
    assert spycloud.request_log == [] and warm['data']['data'] == cold['data']['data']
