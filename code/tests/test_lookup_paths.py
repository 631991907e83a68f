"""Fast and complete lookups: concurrency, pacing, retries, caches and the deadline, over HTTP."""

import json
import threading
import time

import pytest

from simulator import data
from spycloud.deadline import Deadline, DeadlineReached
from spycloud.ratelimit import RateLimiter
from support import email


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_catalogs_are_fetched_concurrently(make_relay, spycloud):
    relay = make_relay(spycloud_catalog_batch=1)
    spycloud.latency = 0.15
    body = relay.observe([email('r20c10@wide.example')])
    assert body['data']['indicators']['count'] == 10
    assert spycloud.stats()['by_endpoint']['catalog'] == 10
    # The proof is what SpyCloud saw at once, not a time a slower CPU could miss.
    assert spycloud.stats()['max_in_flight'] >= 5


def test_catalogs_are_batched_ten_per_call(relay, spycloud):
    spycloud.latency = 0.1
    value = 'r50c25@batch.example'
    body = relay.observe([email(value)])
    assert body['data']['indicators']['count'] == 25
    calls = [
        c['path'].rsplit('/', 1)[1] for c in spycloud.request_log if c['endpoint'] == 'catalog'
    ]
    assert sorted(len(call.split(',')) for call in calls) == [5, 10, 10]
    fetched = sorted(int(i) for call in calls for i in call.split(','))
    assert fetched == sorted(data.catalog_ids_for('emails', value))
    assert spycloud.stats()['max_in_flight'] == 3  # the three batches at once


def test_a_refused_batch_falls_back_to_single_ids(relay, spycloud):
    spycloud.add_fault(
        400,
        match=r'catalog/\d+,',
        body={'errorType': 'BadRequest', 'errorMessage': "[BadRequest] Invalid parameter: 'id'."},
    )
    value = 'r6c3@fallback.example'
    body = relay.observe([email(value)])
    assert body['data']['indicators']['count'] == 3
    assert 'errors' not in body
    assert spycloud.stats()['by_endpoint']['catalog'] == 1 + 3


def test_observables_are_looked_up_concurrently(relay, spycloud):
    spycloud.latency = 0.15
    values = [f'r1c1-{n}@many.example' for n in range(6)]
    body = relay.observe([email(v) for v in values])
    assert body['data']['sightings']['count'] == 6
    emails = [c for c in spycloud.request_log if c['endpoint'] == 'emails']
    assert len(emails) == 6
    assert spycloud.stats()['max_in_flight'] >= 4


def test_cold_lookup_calls_pages_plus_catalogs_warm_only_pages(relay, spycloud):
    spycloud.page_size = 10
    value = 'r25c16@calls.example'
    relay.observe([email(value)])
    assert spycloud.stats()['by_endpoint'] == {
        **spycloud.stats()['by_endpoint'],
        'emails': 3,
        'catalog': 2,
    }
    spycloud.reset_stats()
    relay.observe([email(value)])
    assert spycloud.stats()['requests'] == 3


def test_results_are_identical_to_the_serial_path(make_relay):
    observables = [
        email(v)
        for v in ('r12c5@same.example', 'admin@example.org', 'r3c3@other.example', 'none@x.example')
    ]
    parallel = make_relay().observe(observables)
    serial = make_relay(spycloud_max_workers=1).observe(observables)
    assert json.dumps(parallel, sort_keys=True) == json.dumps(serial, sort_keys=True)
    assert parallel['data']['sightings']['count'] == 12 + 11 + 3


def test_rate_limiter_keeps_lookups_under_spycloud_limit(make_relay, spycloud):
    spycloud.rate_limit = (20, 5)
    # 80% of SpyCloud's limit leaves room for jitter in when calls arrive; retries are off here
    # so that any 429 would show.
    relay = make_relay(
        spycloud_rate_limit=16, spycloud_burst=4, spycloud_retries=0, spycloud_catalog_batch=1
    )
    body = relay.observe([email('r30c15@paced.example')])
    assert 'errors' not in body
    assert body['data']['indicators']['count'] == 15
    assert {c['status'] for c in spycloud.request_log} == {200}


def test_without_the_limiter_the_same_burst_is_throttled(make_relay, spycloud):
    spycloud.rate_limit = (20, 5)
    relay = make_relay(spycloud_rate_limit=0, spycloud_retries=0, spycloud_catalog_batch=1)
    body = relay.observe([email('r30c15@unpaced.example')])
    assert 429 in {c['status'] for c in spycloud.request_log}
    assert body['errors']  # some catalogs were refused


def test_rate_limiter_paces_per_key():
    limiter = RateLimiter(rate=50, burst=2)
    started = time.monotonic()
    for _ in range(7):
        limiter.acquire('a')
    assert time.monotonic() - started >= (7 - 2) / 50 * 0.9
    assert limiter.acquire('b') == 0.0  # another key has its own bucket
    assert RateLimiter(rate=0, burst=1).acquire('a') == 0.0


def test_rate_limiter_refuses_a_wait_past_the_deadline():
    limiter = RateLimiter(rate=1, burst=1)
    limiter.acquire('a')
    with pytest.raises(DeadlineReached):
        limiter.acquire('a', Deadline(0.2))


def test_connection_reset_is_retried(relay, spycloud):
    spycloud.add_fault(mode='reset', match='emails', times=1)
    body = relay.observe([email('r2c1@reset.example')])
    assert body['data']['sightings']['count'] == 2
    assert len([c for c in spycloud.request_log if c['endpoint'] == 'emails']) == 2


def test_retries_never_run_past_the_deadline(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=1.0)
    spycloud.throttle(times=None, retry_after=5)
    body, elapsed = timed(lambda: relay.observe([email('r1c1@never.example')]))
    assert elapsed < 1.5
    assert body['errors'][0]['code'] == 'too many requests'


def test_deadline_answers_with_what_arrived(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=1.0)
    spycloud.latency = 0.6  # records arrive at 0.6 s, catalogs would arrive at 1.2 s
    value = 'r4c2@slow.example'
    body, elapsed = timed(lambda: relay.observe([email(value)]))
    assert elapsed < 1.0 + 0.5
    assert body['data']['sightings']['count'] == 4
    assert 'indicators' not in body['data']
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'deadline exceeded'
    assert 'breach sources' in warning['message'] and value in warning['message']
    time.sleep(0.3)
    assert relay.spycloud.in_flight == 0  # no worker thread left busy


def test_deadline_during_the_records_call(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=0.5)
    spycloud.latency = 2.0
    body, elapsed = timed(lambda: relay.observe([email('r2c1@stuck.example')]))
    assert elapsed < 0.5 + 0.5
    assert body == {
        'data': {},
        'errors': [
            {
                'type': 'warning',
                'code': 'deadline exceeded',
                'message': 'The lookup deadline (0.5 s) cut short the breach records of '
                'r2c1@stuck.example after 0 page(s).',
            }
        ],
    }


def test_deadline_between_pages_keeps_earlier_pages(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=1.0)
    spycloud.page_size = 2
    spycloud.latency = 0.4
    body = relay.observe([email('r10c1@pages.example')])
    assert body['data']['sightings']['count'] in (2, 4)
    assert any('after' in e['message'] for e in body['errors'])


def test_catalog_cache_expires(make_relay, spycloud):
    relay = make_relay(catalog_cache_ttl_s=0.3, spycloud_catalog_batch=1)
    relay.observe([email('r3c3@ttl.example')])
    relay.observe([email('r3c3@ttl.example')])
    assert spycloud.stats()['by_endpoint']['catalog'] == 3
    time.sleep(0.4)
    relay.observe([email('r3c3@ttl.example')])
    assert spycloud.stats()['by_endpoint']['catalog'] == 6


def test_catalog_cache_is_per_api_key(make_relay, spycloud):
    relay = make_relay(spycloud_catalog_batch=1)
    spycloud.api_keys.add('second-key')
    try:
        relay.observe([email('r2c2@keys.example')])
        relay.observe([email('r2c2@keys.example')], key='second-key')
        assert spycloud.stats()['by_endpoint']['catalog'] == 4
    finally:
        spycloud.api_keys.discard('second-key')


def test_jwks_cache_expires(make_relay, jwks):
    relay = make_relay(jwks_cache_ttl_s=0.3)
    jwks.reset_stats()
    relay.health()
    relay.health()
    assert jwks.requests == 1
    time.sleep(0.4)
    relay.health()
    assert jwks.requests == 2


def test_catalog_errors_become_warnings(make_relay, spycloud):
    relay = make_relay(spycloud_catalog_batch=1)
    value = 'r4c2@flaky.example'
    broken = data.catalog_ids_for('emails', value)[0]
    spycloud.add_fault(500, match=f'catalog/{broken}$', body={'errorMessage': 'db down'})
    body = relay.observe([email(value)])
    assert body['data']['sightings']['count'] == 4
    assert body['errors'] == [
        {
            'type': 'warning',
            'code': 'internal error',
            'message': f'SpyCloud did not return results for {broken}: '
            'The SpyCloud internal error: db down',
        }
    ]


def test_connections_are_kept_alive_and_reused(relay, spycloud):
    results = []

    def lookup(n):
        results.append(relay.observe([email(f'r2c2-{n}@pool.example')]))

    threads = [threading.Thread(target=lookup, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(results) == 8
    assert all(r['data']['sightings']['count'] == 2 for r in results)
    calls = spycloud.stats()['requests']
    assert calls == 8 * 2 and spycloud.stats()['connections'] < calls
    spycloud.reset_stats()
    for n in range(5):
        relay.observe([email(f'r2c2-again-{n}@pool.example')])
    assert spycloud.stats()['requests'] == 10
    assert spycloud.stats()['connections'] == 0  # every call reused a pooled connection
