import pytest

from app import create_app
from config import Settings
from simulator import JwksIssuer, SpyCloudSimulator
from support import RelayServer


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


@pytest.fixture
def spycloud(spycloud_server):
    """The session's simulator, returned to its defaults after each test."""
    spycloud_server.reset_stats()
    yield spycloud_server
    spycloud_server.clear_faults()
    spycloud_server.missing_catalogs.clear()
    spycloud_server.page_size = 1000
    spycloud_server.gzip = False
    spycloud_server.latency = 0.0
    spycloud_server.rate_limit = None
    spycloud_server.retry_after = None
    spycloud_server.monthly_quota = None
    spycloud_server.reset_stats()


def relay_settings(spycloud, jwks, **overrides):
    values = dict(
        spycloud_api_url=spycloud.url,
        allowed_jwks_hosts=(jwks.jwks_host,),
        spycloud_backoff_s=0.01,
        connect_timeout_s=2.0,
        read_timeout_s=5.0,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_relay(spycloud, jwks):
    """Start a relay with settings overridden for one test; all are stopped afterwards."""
    started = []

    def make(**overrides):
        server = RelayServer(create_app(relay_settings(spycloud, jwks, **overrides)), jwks)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def relay(make_relay):
    return make_relay()
