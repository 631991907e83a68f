"""Replicas sharing one Redis, over HTTP under gunicorn (gunicorn_conf.py, two workers each):
one cold lookup anywhere warms every worker of both replicas, and Redis dying (and coming
back) costs no answer."""

import contextlib
import threading

import pytest
import requests

from localrelay import gunicorn_relay
from redis_server import RedisServer
from support import RelayAt, email, windowed_calls

LOOKUP = [email('r12c4@shared.example')]


@pytest.fixture(scope='module')
def redis():
    """A redis-server of this module's own: a test here kills it (the session's is shared)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope='module')
def replicas(spycloud_server, jwks, redis):
    """Two relays (two workers each) on one Redis, the limiter off."""
    env = dict(
        COMPASS_PIVOT='false',  # the calls of records and catalogs, counted alone
        WEB_CONCURRENCY=2,
        REDIS_URL=redis.url,
        LOG_LEVEL='warning',
        SPYCLOUD_RATE_LIMIT=0,
        SPYCLOUD_BACKOFF_S=0.01,
    )
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(gunicorn_relay(spycloud_server, jwks, **env)) for _ in range(2)]
        yield [RelayAt(url, jwks) for url in urls]


def fresh_connections(relay, count):
    """``count`` lookups, each on a new connection, so they land on either worker."""
    answers = []
    for _ in range(count):
        response = requests.post(
            relay.url + '/observe/observables',
            json=LOOKUP,
            timeout=30,
            headers={'Authorization': f'Bearer {relay.token()}', 'Connection': 'close'},
        )
        answers.append(response.json())
    return answers


def test_one_cold_lookup_warms_every_worker_of_every_replica(replicas, spycloud):
    first, second = replicas
    cold = first.observe(LOOKUP)
    assert cold['data']['sightings']['count'] == 12
    calls = spycloud.stats()['requests']
    assert calls >= 2  # records and catalogs, once
    answers = fresh_connections(first, 6) + fresh_connections(second, 6)
    assert all(a == cold for a in answers)
    assert spycloud.stats()['requests'] == calls  # no worker of either replica asked again


def test_redis_dying_and_coming_back_costs_no_answer(replicas, spycloud, redis):
    first, second = replicas
    redis.stop()
    try:
        down = fresh_connections(first, 3) + fresh_connections(second, 3)
        assert all(a['data']['sightings']['count'] == 12 and 'errors' not in a for a in down)
    finally:
        redis.start()
    back = [r.observe([email('r3c1@after.example')]) for r in replicas]
    assert all(a['data']['sightings']['count'] == 3 and 'errors' not in a for a in back)


def test_without_redis_each_replica_pays_its_own_cold_lookup(spycloud_server, jwks, spycloud):
    """The control: the same steps without REDIS_URL do ask SpyCloud again."""
    env = dict(WEB_CONCURRENCY=1, LOG_LEVEL='warning', SPYCLOUD_RATE_LIMIT=0, COMPASS_PIVOT='false')
    with (
        gunicorn_relay(spycloud_server, jwks, **env) as one,
        gunicorn_relay(spycloud_server, jwks, **env) as other,
    ):
        first, second = RelayAt(one, jwks), RelayAt(other, jwks)
        lookup = [email('r12c4@unshared.example')]
        first.observe(lookup)
        calls = spycloud.stats()['requests']
        second.observe(lookup)
        assert spycloud.stats()['requests'] > calls


def test_a_dashboard_gathered_on_one_replica_serves_the_other(replicas, spycloud):
    first, second = replicas
    body = {'tile_id': 'spycloud-exposure-summary', 'period': 'last_30_days'}
    cold = first.post('/tiles/tile-data', body).json()
    gathered = spycloud.stats()['by_endpoint']['watchlist-records']
    assert gathered == windowed_calls('last_30_days') and 'errors' not in cold
    for relay in (first, second, second):
        warm = requests.post(
            relay.url + '/tiles/tile-data',
            json=body,
            timeout=30,
            headers={'Authorization': f'Bearer {relay.token()}', 'Connection': 'close'},
        ).json()
        assert warm['data']['data'] == cold['data']['data']
    assert spycloud.stats()['by_endpoint']['watchlist-records'] == gathered


@pytest.fixture
def replicas_on_a_fresh_redis(spycloud_server, jwks, fresh_redis):
    """Two relays (two workers each) on the session's Redis, emptied: no worker of theirs has
    met the outage the module's own Redis goes through (after which a worker's first use of
    a pooled connection may fall back to its in-process state)."""
    env = dict(
        WEB_CONCURRENCY=2, REDIS_URL=fresh_redis.url, LOG_LEVEL='warning', COMPASS_PIVOT='false'
    )
    env.update(SPYCLOUD_RATE_LIMIT=0)
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(gunicorn_relay(spycloud_server, jwks, **env)) for _ in range(2)]
        yield [RelayAt(url, jwks) for url in urls]


def test_every_tile_at_once_on_both_replicas_is_one_gathering(replicas_on_a_fresh_redis, spycloud):
    """XDR's dashboard asks for its five tiles at once; here on fresh connections to both
    replicas (so on any of the four workers): one gathering's SpyCloud calls in all."""
    replicas = replicas_on_a_fresh_redis
    spycloud.latency = 0.05  # a gathering long enough for the tiles to meet
    tiles = [
        'spycloud-exposure-summary',
        'spycloud-exposures-per-day',
        'spycloud-exposures-by-severity',
        'spycloud-most-exposed-accounts',
        'spycloud-newest-breach-sources',
    ]
    start, answers = threading.Barrier(len(tiles)), {}

    def ask(relay, tile_id):
        start.wait()
        answers[tile_id] = requests.post(
            relay.url + '/tiles/tile-data',
            json={'tile_id': tile_id, 'period': 'last_90_days'},
            timeout=60,
            headers={'Authorization': f'Bearer {relay.token()}', 'Connection': 'close'},
        ).json()

    threads = [
        threading.Thread(target=ask, args=(replicas[i % 2], tile_id))
        for i, tile_id in enumerate(tiles)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == sorted(tiles)
    assert all('errors' not in a and 'data' in a for a in answers.values()), answers
    watchlist = spycloud.stats()['by_endpoint']['watchlist-records']
    assert watchlist == windowed_calls('last_90_days')
