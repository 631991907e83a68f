"""The in-process caches are bounded by bytes, not only by entries, as the image serves the relay
(gunicorn with gunicorn_conf.py): many lookups keep each cache under its *_CACHE_MAX_MB, read
from /metrics (relay_cache_bytes), beside Redis too; what fits still answers from the cache."""

from contextlib import ExitStack

import pytest
import requests

from localrelay import gunicorn_relay
from support import RelayAt, email, metric

MIB = 1024 * 1024
RECORDS_MB, CATALOG_MB = 0.1, 0.01  # about 10 lookups of 20 records, about 7 catalogs


def held(relay, cache):
    text = requests.get(relay.url + '/metrics', timeout=5).text
    return metric(text, 'relay_cache_bytes', cache=cache)


@pytest.fixture(params=['in-process', 'redis'])
def relay(request, spycloud, jwks):
    """One worker with small byte bounds; with Redis, each worker's twin is bounded too."""
    with ExitStack() as stack:
        env = dict(
            COMPASS_PIVOT='false',  # the records and catalog caches' bounds, counted alone
            METRICS_ENABLED='true',
            WEB_CONCURRENCY=1,
            RECORDS_CACHE_TTL_S=300,
            RECORDS_CACHE_MAX_MB=RECORDS_MB,
            CATALOG_CACHE_MAX_MB=CATALOG_MB,
        )
        if request.param == 'redis':
            env['REDIS_URL'] = request.getfixturevalue('fresh_redis').url
        url = stack.enter_context(gunicorn_relay(spycloud, jwks, **env))
        yield RelayAt(url, jwks, env=env)


def test_many_lookups_keep_each_cache_under_its_byte_bound(relay, spycloud):
    for n in range(30):
        answer = relay.observe([email(f'r20c2-{n}@bytes{n}.example')])
        assert answer['data']['sightings']['count'] == 20
        assert 0 < held(relay, 'records') <= RECORDS_MB * MIB
        assert 0 < held(relay, 'catalogs') <= CATALOG_MB * MIB
    spycloud.reset_stats()
    again = relay.observe([email('r20c2-29@bytes29.example')])  # the newest: kept
    assert again['data']['sightings']['count'] == 20
    assert spycloud.stats()['requests'] == 0
    relay.observe([email('r20c2-0@bytes0.example')])  # the oldest: gone to make room
    from_redis = 'REDIS_URL' in relay.env  # unless Redis still has it
    assert spycloud.stats()['by_endpoint']['emails'] == (0 if from_redis else 1)


def test_a_lookup_larger_than_the_bound_is_not_kept(relay, spycloud):
    relay.observe([email('r20c2-small@bytes.example')])
    kept = held(relay, 'records')
    big = [email('r400c2-big@bytes.example')]
    assert relay.observe(big, CTR_ENTITIES_LIMIT=1000)['data']['sightings']['count'] == 400
    # Its records (about 200 KB encoded, over the 100 KiB bound) are not kept; its verdict
    # evidence (one record, under 1 KB) is.
    assert kept < held(relay, 'records') < kept + 1024
    spycloud.reset_stats()
    relay.observe(big, CTR_ENTITIES_LIMIT=1000)
    from_redis = 'REDIS_URL' in relay.env  # Redis keeps it: its size is Redis' maxmemory's
    assert spycloud.stats()['by_endpoint']['emails'] == (0 if from_redis else 1)
