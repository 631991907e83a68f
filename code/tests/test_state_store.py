"""The shared store on a real redis-server: the client's values round-trip, a dump of Redis
reveals nothing without the API key, and Redis failing never fails a lookup."""

import logging
import socket
import time

import pytest
import redis
from prometheus_client import REGISTRY

from redis_server import RedisServer
from spycloud_relay import state
from spycloud_relay.config import ConfigError, Settings
from spycloud_relay.spycloud.lookup import key_fingerprint
from spycloud_relay.spycloud.models import BreachRecord, Catalog, Evidence
from spycloud_relay.state import MISSING, MemoryStore, RedisLink, RedisStore
from spycloud_relay.state.crypto import tenant_keys
from support import wait_until

API_KEY = 'tenant-a-spycloud-key-8d1f0e2c'
OTHER_KEY = 'tenant-b-spycloud-key-41c9aa07'
FINGERPRINT = key_fingerprint(API_KEY)
EMAIL = 'alice.liddell@wonder.example'
PASSWORD = 'Sup3r-Secret-Passw0rd!'
TITLE = 'Looking Glass Forum Breach'
RAW_RECORD = {
    'document_id': 'd0c-1d-0001',
    'source_id': 7,
    'severity': 20,
    'spycloud_publish_date': '2024-01-09T00:00:00Z',
    'email': EMAIL,
    'password': PASSWORD,
    'password_plaintext': PASSWORD,
    'ip_addresses': ['10.1.2.3'],
}
RAW_CATALOG = {
    'id': 7,
    'title': TITLE,
    'site': 'lookingglass.example',
    'confidence': 3,
    'spycloud_publish_date': '2024-01-01T00:00:00Z',
    'description': 'A forum.',
}


def records_key(fingerprint=FINGERPRINT, value=EMAIL):
    return ('records', fingerprint, 'email', value, (('severity', '20,25'),), 100)


def evidence_key(fingerprint=FINGERPRINT, value=EMAIL):
    return ('evidence', fingerprint, 'email', value, 20, '2024-01-01')


def catalog_key(fingerprint=FINGERPRINT, catalog_id=7):
    return (fingerprint, catalog_id)


def worker(url, name='records', ttl=300.0, probe_interval_s=1.0):
    """A store as one worker process has it: a link (pool and health) of its own."""
    return RedisStore(RedisLink(url, 0.05, probe_interval_s=probe_interval_s), name, 100, ttl)


def dump(url):
    """Every key and value in Redis, as one lower-cased blob of bytes."""
    client, parts = redis.Redis.from_url(url), []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = client.type(key)
        if kind == b'string':
            parts.append(client.get(key))
        elif kind == b'hash':
            parts.extend(b'%s=%s' % item for item in client.hgetall(key).items())
        else:
            parts.append(client.dump(key))
    return b'\n'.join(parts).lower()


def sample(name):
    return REGISTRY.get_sample_value(name, {'store': 'records'}) or 0.0


def test_the_clients_values_round_trip_between_workers(fresh_redis):
    record, catalog = BreachRecord.from_api(RAW_RECORD), Catalog.from_api(RAW_CATALOG)
    evidence = Evidence(hits=3, newest=record, worst_severity=25)
    writer, reader = worker(fresh_redis.url), worker(fresh_redis.url)
    writer.set_many(
        {
            records_key(): ([record], 42),
            evidence_key(): evidence,
            evidence_key(value='bob@wonder.example'): None,
        },
        secret=API_KEY,
    )
    catalogs = worker(fresh_redis.url, 'catalogs', ttl=3600)
    catalogs.set_many({catalog_key(): catalog}, secret=API_KEY)

    records, hits = reader.get(records_key(), secret=API_KEY)
    assert hits == 42 and records == [record] and records[0].fields == RAW_RECORD
    assert reader.get(evidence_key(), secret=API_KEY) == evidence
    assert reader.get(evidence_key(), secret=API_KEY).newest.fields == RAW_RECORD
    assert reader.get(evidence_key(value='bob@wonder.example'), secret=API_KEY) is None
    assert reader.get(evidence_key(value='carol@wonder.example'), secret=API_KEY) is MISSING
    wanted = [catalog_key(), catalog_key(catalog_id=8)]
    found = worker(fresh_redis.url, 'catalogs').get_many(wanted, secret=API_KEY)
    assert list(found) == [catalog_key()] and found[catalog_key()].fields == RAW_CATALOG


def test_plain_json_values_round_trip(fresh_redis):
    store = worker(fresh_redis.url, 'tiles')
    value = {
        'counts': {'20': 3},
        'top': [('a.example', 2)],
        'ratio': 0.5,
        'none': None,
        (1, 'x'): True,
    }
    store.set('aggregate', value, secret=API_KEY)
    assert worker(fresh_redis.url, 'tiles').get('aggregate', secret=API_KEY) == value


def test_a_dump_of_redis_is_useless_without_the_api_key(fresh_redis):
    record, catalog = BreachRecord.from_api(RAW_RECORD), Catalog.from_api(RAW_CATALOG)
    worker(fresh_redis.url).set_many(
        {records_key(): ([record], 1), evidence_key(): Evidence(1, record, 20)}, secret=API_KEY
    )
    worker(fresh_redis.url, 'catalogs').set(catalog_key(), catalog, secret=API_KEY)
    limiter = state.limiter(Settings(redis_url=fresh_redis.url))
    limiter.acquire(FINGERPRINT)
    limiter.throttled(FINGERPRINT, 0.01)

    blob = dump(fresh_redis.url)
    assert blob.count(b'relay:') == 4  # records, evidence, catalog, budget: all there
    for secret in (
        EMAIL,
        'alice',
        'wonder.example',
        PASSWORD,
        TITLE,
        'lookingglass',
        API_KEY,
        FINGERPRINT,
        RAW_RECORD['document_id'],
        '10.1.2.3',
        'severity',
        'email',
    ):
        assert secret.lower().encode() not in blob, secret


def test_another_api_key_opens_nothing_and_a_moved_value_is_a_miss(fresh_redis):
    writer = worker(fresh_redis.url)
    writer.set(records_key(), ([BreachRecord.from_api(RAW_RECORD)], 1), secret=API_KEY)
    client = redis.Redis.from_url(fresh_redis.url)
    name = tenant_keys(API_KEY).name('records', records_key())
    sealed = client.get(name)
    # The same value under the name another tenant's lookup would read, and under another
    # name of the same tenant: neither opens, and neither is an error.
    other = records_key(fingerprint=key_fingerprint(OTHER_KEY))
    client.set(tenant_keys(OTHER_KEY).name('records', other), sealed)
    moved = records_key(value='mallory@wonder.example')
    client.set(tenant_keys(API_KEY).name('records', moved), sealed)
    reader = worker(fresh_redis.url)
    assert reader.get(other, 'miss', secret=OTHER_KEY) == 'miss'
    assert reader.get(records_key(), 'miss', secret=OTHER_KEY) == 'miss'
    assert reader.get(moved, 'miss', secret=API_KEY) == 'miss'
    client.set(name, sealed[:-1] + bytes([sealed[-1] ^ 1]))  # one bit flipped
    assert reader.get(records_key(), 'miss', secret=API_KEY) == 'miss'
    client.set(name, b'garbage')
    assert reader.get(records_key(), 'miss', secret=API_KEY) == 'miss'


def test_entries_have_the_caches_ttl_and_no_secret_means_no_redis(fresh_redis):
    store = worker(fresh_redis.url, ttl=30)
    store.set(records_key(), ([], 0))  # no secret: kept in this process, never unsealed
    client = redis.Redis.from_url(fresh_redis.url)
    assert client.dbsize() == 0 and store.get(records_key()) == ([], 0)
    store.set(records_key(), ([], 0), secret=API_KEY)
    (name,) = client.keys('relay:records:*')
    assert 0 < client.pttl(name) <= 30_000
    assert not RedisStore(store._link, 'records', 100, 0).enabled  # a TTL of 0: off


def test_a_value_the_codec_cannot_write_stays_in_this_process(fresh_redis, caplog):
    store = worker(fresh_redis.url, 'odd')
    store.set('a', object(), secret=API_KEY)
    store.set('b', {1, 2}, secret=API_KEY)
    assert redis.Redis.from_url(fresh_redis.url).dbsize() == 0
    assert store.get('b', secret=API_KEY) == {1, 2}  # from the twin
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_redis_failing_never_fails_a_lookup(caplog):
    caplog.set_level(logging.INFO, logger='spycloud_relay.state')
    with RedisServer(password='redis-pa55word') as server:
        store = worker(server.url, probe_interval_s=0.2)
        store.set(records_key(), (['before'], 1), secret=API_KEY)
        fallbacks, outages = (
            sample('relay_state_fallback_total'),
            REGISTRY.get_sample_value('relay_state_outages_total'),
        )
        server.stop()  # killed: an outage

        for _ in range(20):  # calls still answer, from the in-process twin
            assert store.get(records_key(), secret=API_KEY) == (['before'], 1)
            store.set(records_key(value='during@wonder.example'), (['during'], 1), secret=API_KEY)
        assert store.get_many([records_key()], secret=API_KEY) == {records_key(): (['before'], 1)}
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and '127.0.0.1' in warnings[0].getMessage()
        assert 'redis-pa55word' not in caplog.text
        assert sample('relay_state_fallback_total') - fallbacks >= 40
        assert REGISTRY.get_sample_value('relay_state_outages_total') - outages == 1

        server.start()  # back, empty: the store uses Redis again within a probe interval
        other = worker(server.url)
        other.set(records_key(value='after@wonder.example'), (['after'], 1), secret=API_KEY)
        assert wait_until(
            lambda: (
                store.get(records_key(value='after@wonder.example'), secret=API_KEY)
                == (['after'], 1)
            ),
            timeout=5,
            interval=0.05,
        )
        assert 'answers again' in caplog.text
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


class SilentServer:
    """A port that accepts connections and never answers: a Redis hung or behind a black
    hole. The kernel completes the handshakes; nobody reads. ``handshakes()`` counts the
    connections made since it was last asked."""

    def __init__(self):
        self._listener = socket.socket()
        self._listener.bind(('127.0.0.1', 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.url = f'redis://127.0.0.1:{self._listener.getsockname()[1]}/0'
        self._held = []

    def handshakes(self):
        made = 0
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                return made
            self._held.append(conn)  # kept open: still nobody answers
            made += 1

    def close(self):
        for conn in self._held:
            conn.close()
        self._listener.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def test_a_silent_redis_costs_tens_of_milliseconds_then_nothing(silent_server):
    store = RedisStore(RedisLink(silent_server.url, 0.05, probe_interval_s=60), 'records', 100, 300)
    started = time.monotonic()
    store.set(records_key(), (['kept'], 1), secret=API_KEY)  # times out, kept in the twin
    first = time.monotonic() - started
    assert first < 0.05 + 1.0  # the link's 50 ms timeout (the bound under test), with 1 s room
    assert silent_server.handshakes() >= 1
    for _ in range(50):
        assert store.get(records_key(), secret=API_KEY) == (['kept'], 1)
    # No call went to Redis again before the next probe (60 s away): not one connection.
    assert silent_server.handshakes() == 0


@pytest.mark.pure
def test_the_codec_round_trips_the_registered_kinds_and_refuses_the_rest():
    from spycloud_relay.state import codec

    record = BreachRecord.from_api(RAW_RECORD)
    value = {
        'k': (Evidence(hits=3, newest=record, worst_severity=25), [Catalog.from_api(RAW_CATALOG)])
    }
    again = codec.decode(codec.encode(value))
    evidence, catalogs = again['k']
    assert evidence.newest.fields == RAW_RECORD and evidence.hits == 3
    assert catalogs[0].fields == RAW_CATALOG
    with pytest.raises(codec.Undecodable):
        codec.decode(b'{"$": "Pickle", "value": "..."}')
    with pytest.raises(ValueError, match='already has a kind tagged'):
        codec.register(dict, 'BreachRecord', dict, dict)  # a tag names one type
    with pytest.raises(ValueError, match='already has a kind tagged'):
        codec.register(set, 'tuple', list, set)


def test_the_memory_store_takes_the_same_calls():
    store = MemoryStore(10, 60)
    store.set('a', 1, secret=API_KEY)
    store.set_many({'b': 2}, secret=API_KEY)
    assert store.get('a', secret=API_KEY) == 1 and store.get('c') is MISSING
    assert store.get_many(['a', 'b', 'c'], secret=API_KEY) == {'a': 1, 'b': 2}
    assert not MemoryStore(10, 0).enabled and MemoryStore(10, 0).get('a', 'x') == 'x'


def test_the_memory_store_evicts_the_least_recently_used_past_its_bytes():
    """Sizes are the encoded lengths: '"xxxxxxxx"' is 10 bytes, so 30 bytes hold three."""
    store = MemoryStore(100, 60, max_bytes=30)
    store.set_many({'a': 'x' * 8, 'b': 'y' * 8, 'c': 'z' * 8})
    assert store.get('a') == 'x' * 8  # read: now the most recently used
    store.set('d', 'w' * 8)
    assert store.get_many('abcd') == {'a': 'x' * 8, 'c': 'z' * 8, 'd': 'w' * 8}
    assert store.held_bytes == 30
    store.set('c', 'v' * 40)  # larger than the whole bound: not kept, nor its older value
    assert store.get_many('abcd') == {'a': 'x' * 8, 'd': 'w' * 8} and store.held_bytes == 20
    few = MemoryStore(2, 60, max_bytes=1000)  # the entry bound holds too
    few.set_many({'a': 1, 'b': 2, 'c': 3})
    assert few.get_many('abc') == {'b': 2, 'c': 3}


def test_the_factories_choose_by_redis_url(fresh_redis):
    assert isinstance(state.cache(Settings(), 'records', 10, 60), MemoryStore)
    assert isinstance(state.limiter(Settings()), state.AdaptiveLimiter)
    shared = Settings(redis_url=fresh_redis.url)
    assert isinstance(state.cache(shared, 'records', 10, 60), RedisStore)
    assert isinstance(state.cache(shared, 'records', 10, 0), MemoryStore)
    assert isinstance(state.limiter(shared), state.RedisLimiter)
    assert isinstance(
        state.limiter(Settings(redis_url=fresh_redis.url, spycloud_rate_limit=0)),
        state.AdaptiveLimiter,
    )
    assert state.link(shared) is state.link(shared)  # one pool and one outage per process


@pytest.mark.parametrize(
    'url', ['', 'redis://localhost:6379/0', ' rediss://:pw@cache:6380 ', 'REDIS://h']
)
def test_redis_url_accepts_redis_schemes(url):
    assert Settings.from_env({'REDIS_URL': url}).redis_url == url.strip()


@pytest.mark.parametrize(
    'url', ['http://:hunter2@cache:6379', 'unix:///tmp/r.sock', ':hunter2@cache:6379']
)
def test_redis_url_of_another_scheme_names_the_variable_not_the_password(url):
    with pytest.raises(ConfigError, match='REDIS_URL') as refused:
        Settings.from_env({'REDIS_URL': url})
    assert 'hunter2' not in str(refused.value)


@pytest.mark.parametrize(
    'name', ['REDIS_TIMEOUT_S', 'SPYCLOUD_RATE_FLOOR', 'SPYCLOUD_RATE_RECOVERY_S']
)
def test_state_settings_must_be_positive(name):
    with pytest.raises(ConfigError, match=f'{name} must be greater than 0'):
        Settings.from_env({name: '0'})


def test_a_redis_that_refuses_writes_is_no_outage(fresh_redis, caplog):
    """A full Redis under ``maxmemory-policy noeviction`` answers writes with OOM: the values
    stay in the process, one warning says so, and reads still go to Redis."""
    client = redis.Redis.from_url(fresh_redis.url)
    client.config_set('maxmemory-policy', 'noeviction')
    client.config_set('maxmemory', 1)
    store = worker(fresh_redis.url)
    outages = REGISTRY.get_sample_value('relay_state_outages_total')
    for index in range(10):
        store.set(records_key(value=f'u{index}@wonder.example'), ([], index), secret=API_KEY)
        limiter = state.RedisLimiter(store._link, state.BudgetRule(ceiling=10, burst=100))
        assert limiter.acquire(FINGERPRINT) == 0.0  # the script writes: refused, paced here
    assert store.get(records_key(value='u3@wonder.example'), secret=API_KEY) == ([], 3)
    assert client.dbsize() == 0 and store._link.up
    assert REGISTRY.get_sample_value('relay_state_outages_total') == outages
    refusals = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refusals) == 1 and 'maxmemory' in refusals[0].getMessage()
    assert 'relay:records' not in refusals[0].getMessage()  # not the command a pipeline quotes
