"""Fast and complete lookups: concurrency, pacing, retries, caches and the deadline, over HTTP."""

import json
import threading
import time

import pytest

from simulator import SpyCloudSimulator, data
from spycloud_relay.config import Settings
from support import Clock, Proxy, email, wait_until


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def _no_proxies(monkeypatch):
    for name in ('HTTPS_PROXY', 'HTTP_PROXY', 'ALL_PROXY', 'NO_PROXY'):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_https_goes_through_the_proxy_in_a_tunnel(make_relay, jwks, monkeypatch):
    """HTTPS_PROXY is read once, when the relay starts; the proxy sees where, never the key."""
    _no_proxies(monkeypatch)
    with Proxy() as proxy, SpyCloudSimulator(tls=jwks.server_cert_paths) as tls_sim:
        monkeypatch.setenv('HTTPS_PROXY', proxy.url)
        relay = make_relay(spycloud_api_url=tls_sim.url)
        monkeypatch.delenv('HTTPS_PROXY')  # the relay's own client calls go direct
        body = relay.observe([email('r3c1@proxied.example')])
        assert body['data']['sightings']['count'] == 3
        assert tls_sim.stats()['by_endpoint']['emails'] == 1
        host = tls_sim.url.split('/')[2]
    assert proxy.heads, 'nothing went through the proxy'
    assert all(head.startswith(f'CONNECT {host} ') for head in proxy.heads)
    assert not any(data.DEFAULT_API_KEY in head for head in proxy.heads)


def test_plain_http_goes_through_the_proxy_in_absolute_form(make_relay, spycloud, monkeypatch):
    _no_proxies(monkeypatch)
    with Proxy() as proxy:
        monkeypatch.setenv('HTTP_PROXY', proxy.url)
        relay = make_relay()
        monkeypatch.delenv('HTTP_PROXY')
        body = relay.observe([email('r3c1@proxied.example')])
    assert body['data']['sightings']['count'] == 3
    lines = [head.split('\r\n', 1)[0] for head in proxy.heads]
    assert lines[0].startswith(f'GET {spycloud.url}breach/data/emails/r3c1@proxied.example')
    assert any(line.startswith(f'GET {spycloud.url}breach/catalog/') for line in lines)
    # The simulator got each call in origin form, as a proxy forwards it.
    assert {c['endpoint'] for c in spycloud.request_log} == {'emails', 'catalog'}


def test_a_call_names_only_the_path_on_its_request_line(relay, spycloud):
    """Without a proxy the request line is origin-form (``GET /enterprise-v2/...``)."""
    relay.observe([email('r3c1@origin.example')])
    assert spycloud.request_log
    assert all(c['path'].startswith('/enterprise-v2/') for c in spycloud.request_log)


class OneAnswerServer:
    """Answers each connection's first request with a keep-alive 200, then closes it: the
    connection the client put back in its pool is dead when it is next taken."""

    def __init__(self):
        import socketserver

        owner = self
        self.connections = 0
        self.closed = threading.Event()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                owner.connections += 1
                while self.rfile.readline() not in (b'\r\n', b''):
                    pass
                self.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}')

            def finish(self):
                super().finish()
                self.connection.close()
                owner.closed.set()

        self._server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), Handler)
        self._server.daemon_threads = True
        self.url = f'http://127.0.0.1:{self._server.server_address[1]}/enterprise-v2/'
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize('select_works', [True, False])
def test_a_pooled_connection_the_server_closed_is_not_reused(monkeypatch, select_works):
    """The zero-timeout select that checks a pooled connection (and urllib3's own poll where
    select cannot take the descriptor) sees the server's close: the next call opens a new
    connection instead of failing on the dead one (nothing here may retry)."""
    from spycloud_relay.spycloud import connections as pooling

    checks = []

    def select(rlist, wlist, xlist, timeout):
        checks.append(timeout)
        if not select_works:
            raise ValueError('filedescriptor out of range in select()')
        return real_select(rlist, wlist, xlist, timeout)

    real_select = pooling.select.select
    with OneAnswerServer() as server:
        pool, prefix = pooling.connection_pool(Settings(spycloud_api_url=server.url))
        assert pool.urlopen('GET', prefix + 'a', retries=False).status == 200
        assert server.closed.wait(5)
        monkeypatch.setattr(pooling.select, 'select', select)
        assert pool.urlopen('GET', prefix + 'b', retries=False).status == 200
        pool.close()
    assert server.connections == 2
    assert checks == [0]


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
    spycloud.refuse_parameter('id', match=r'catalog/\d+,')
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


def test_connection_reset_is_retried(relay, spycloud):
    spycloud.add_fault(mode='reset', match='emails', times=1)
    body = relay.observe([email('r2c1@reset.example')])
    assert body['data']['sightings']['count'] == 2
    assert len([c for c in spycloud.request_log if c['endpoint'] == 'emails']) == 2


# Slack for the deadline tests below, on a loaded machine: each guards against a wait of 30 s.
MARGIN = 1.0


def test_retries_never_run_past_the_deadline(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=1.0)
    spycloud.throttle(times=None, retry_after=30)
    body, elapsed = timed(lambda: relay.observe([email('r1c1@never.example')]))
    assert elapsed < 1.0 + MARGIN
    assert body['errors'][0]['code'] == 'too many requests'


def test_deadline_answers_with_what_arrived(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=1.0)
    spycloud.latency = 0.6  # records arrive at 0.6 s, catalogs would arrive at 30.6 s
    spycloud.add_fault(mode='hang', match='catalog', delay=30)
    value = 'r4c2@slow.example'
    body, elapsed = timed(lambda: relay.observe([email(value)]))
    assert elapsed < 1.0 + MARGIN
    assert body['data']['sightings']['count'] == 4
    assert 'indicators' not in body['data']
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'deadline exceeded'
    assert 'breach sources' in warning['message'] and value in warning['message']
    assert wait_until(lambda: relay.spycloud.in_flight == 0)  # no worker thread left busy


def test_deadline_during_the_records_call(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=0.5)
    spycloud.add_fault(mode='hang', match='emails', delay=30)
    body, elapsed = timed(lambda: relay.observe([email('r2c1@stuck.example')]))
    assert elapsed < 0.5 + MARGIN
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
    clock = Clock()
    relay = make_relay(clock=clock, catalog_cache_ttl_s=300, spycloud_catalog_batch=1)
    relay.observe([email('r3c3@ttl.example')])
    clock.now += 299
    relay.observe([email('r3c3@ttl.example')])
    assert spycloud.stats()['by_endpoint']['catalog'] == 3
    clock.now += 1
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
    clock = Clock()
    relay = make_relay(clock=clock, jwks_cache_ttl_s=300)
    jwks.reset_stats()
    relay.health()
    clock.now += 299
    relay.health()
    assert jwks.requests == 1
    clock.now += 1
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
