"""The fixtures: the session's servers (SpyCloud simulator, JWKS issuer, redis-server, fake
XDR), relays made for a test, and the relay under gunicorn. Helpers live in support.py."""

import socket
import threading

import pytest
import redis as redis_py
from hypothesis import settings as hypothesis_settings

from localrelay import gunicorn_relay
from redis_server import RedisServer
from simulator import JwksIssuer, SpyCloudSimulator, XdrSimulator
from support import Canary, RelayAt, relay_settings, start_relay, stopped_afterwards

# `make test-fast` (pytest -m pure --hypothesis-profile=fast): the property tests with fewer
# examples (tests/test_properties.py reads the profile's name).
hypothesis_settings.register_profile('fast', max_examples=20)

# What a test marked ``pure`` may not use: it runs in `make test-fast`, with no server.
SERVER_FIXTURES = frozenset(
    {
        'jwks',
        'spycloud_server',
        'spycloud',
        'make_relay',
        'relay',
        'gunicorn_relay_server',
        'redis_server',
        'fresh_redis',
        'xdr_server',
        'xdr',
    }
)


def pytest_collection_modifyitems(items):
    for item in items:
        used = SERVER_FIXTURES.intersection(getattr(item, 'fixturenames', ()))
        if item.get_closest_marker('pure') and used:
            raise pytest.UsageError(f'{item.nodeid} is marked pure but uses {sorted(used)}')


@pytest.fixture(autouse=True)
def _pure_tests_open_no_socket(request):
    """A ``pure`` test that connects or listens (in its own thread) fails: it is not pure."""
    if request.node.get_closest_marker('pure') is None:
        yield
        return
    main = threading.current_thread()

    def guarded(original):
        def method(self, *args, **kwargs):
            if threading.current_thread() is main:
                raise AssertionError(f'a test marked pure used a socket: {original.__name__}')
            return original(self, *args, **kwargs)

        return method

    with pytest.MonkeyPatch.context() as patch:
        for name in ('connect', 'connect_ex', 'bind'):
            patch.setattr(socket.socket, name, guarded(getattr(socket.socket, name)))
        yield


@pytest.fixture(scope='session')
def jwks():
    """The local signing-key server; the relay trusts its CA through REQUESTS_CA_BUNDLE."""
    issuer = JwksIssuer().start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('REQUESTS_CA_BUNDLE', issuer.ca_pem_path)
        yield issuer
    issuer.stop()


@pytest.fixture(scope='session')
def spycloud_server():
    simulator = SpyCloudSimulator().start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope='session')
def redis_server():
    """The session's redis-server (redis_server.RedisServer). Tests take ``fresh_redis``; a test
    that kills Redis starts a RedisServer of its own, so that no other test sees the outage."""
    with RedisServer() as server:
        yield server


# What a test may change of the session's redis-server (to fill it up), as it starts.
REDIS_CONFIG = {'maxmemory': '0', 'maxmemory-policy': 'noeviction'}


@pytest.fixture
def fresh_redis(redis_server):
    """The session's redis-server as it started: emptied, its configuration a test may change
    (REDIS_CONFIG) set back, and its command counts reset."""
    client = redis_py.Redis.from_url(redis_server.url)
    try:
        for name, value in REDIS_CONFIG.items():
            client.config_set(name, value)
        client.flushall()
        client.config_resetstat()
    finally:
        client.close()
    return redis_server


@pytest.fixture
def spycloud(spycloud_server):
    """The session's simulator, returned to its defaults after each test."""
    spycloud_server.reset_stats()
    yield spycloud_server
    spycloud_server.reset()


@pytest.fixture(scope='session')
def xdr_server():
    with XdrSimulator() as simulator:
        yield simulator


@pytest.fixture
def xdr(xdr_server):
    """The session's fake XDR (simulator/xdr.py): empty store, no token, no fault."""
    xdr_server.reset()
    yield xdr_server
    xdr_server.reset()


@pytest.fixture
def make_relay(spycloud, jwks):
    """Start a relay with settings overridden for one test; all are stopped afterwards.

    ``make_relay(clock=...)`` gives its caches a clock the test moves. Each is a
    support.RelayServer: ``relay.spycloud`` is the SpyCloudClient its app uses,
    ``relay.settings`` its settings.
    """
    with stopped_afterwards(
        lambda clock=None, **overrides: start_relay(
            relay_settings(spycloud, jwks, **overrides), jwks, clock
        )
    ) as make:
        yield make


@pytest.fixture
def relay(make_relay):
    return make_relay()


# The relay under gunicorn: the image's command line (localrelay.APP with gunicorn_conf.py) on
# a loopback port. One worker, so that what takes one worker's capacity shows; a 3 s lookup
# deadline and a 2 s key-fetch cap, so that tests of hanging upstreams end soon.
GUNICORN_ENV = dict(
    WEB_CONCURRENCY=1,
    LOG_LEVEL='info',
    LOOKUP_DEADLINE_S=3,
    JWKS_TIMEOUT_S=2,
    SPYCLOUD_BACKOFF_S=0.01,
)


@pytest.fixture(scope='module')
def gunicorn_relay_server(spycloud_server, jwks, tmp_path_factory):
    """RelayAt for the relay served by gunicorn, started once per test module (about 1 s).

    Beside the issuer it allows ``canary``: a key server that drips its headers a byte every
    0.2 s. Its JSON log goes to ``log_path``; its settings are in ``env``.
    """
    log_path = tmp_path_factory.mktemp('gunicorn') / 'relay.log'
    with Canary(jwks, 'drip-headers') as canary, open(log_path, 'w') as output:
        env = dict(GUNICORN_ENV, ALLOWED_JWKS_HOSTS=f'{jwks.jwks_host},{canary.host}')
        with gunicorn_relay(spycloud_server, jwks, output=output, **env) as url:
            yield RelayAt(url, jwks, log_path, canary, env)
