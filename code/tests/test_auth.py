"""The configuration token's way through the relay's HTTP port: the header, the audience,
the claims that become the module's settings, and the key fetch and its cache.

Forged, tampered, malformed and expired tokens, and key servers that misbehave, have their
one home in test_hostile_tokens.py.
"""

import logging

import pytest

from spycloud_relay.api import auth
from spycloud_relay.logs import JsonFormatter
from spycloud_relay.spycloud.lookup import UNSENDABLE_KEY
from support import refused


@pytest.mark.parametrize('path', ['/health', '/observe/observables'])
def test_missing_header(relay, path):
    response = relay.post(path, [], headers={'Authorization': ''})
    assert refused(response) == auth.NO_AUTH_HEADER


@pytest.mark.parametrize('header', ['Basic abc', 'Bearer', 'Bearer a b', 'token'])
def test_wrong_authorization_type(relay, header):
    assert refused(relay.post('/health', headers={'Authorization': header})) == auth.WRONG_AUTH_TYPE


def test_scheme_is_case_insensitive(relay):
    response = relay.post('/health', headers={'Authorization': f'bearer {relay.token()}'})
    assert response.json() == {'data': {'status': 'ok'}}


def test_audience_setting_overrides_request_root(make_relay):
    relay = make_relay(jwt_audience='https://relay.example/')
    assert relay.post('/health', aud='https://relay.example').json() == {'data': {'status': 'ok'}}
    assert refused(relay.post('/health')) == auth.WRONG_AUDIENCE


def test_token_without_exp_is_accepted(relay):
    assert relay.post('/health', exp=None).json() == {'data': {'status': 'ok'}}


def test_missing_api_key_claim(relay):
    assert refused(relay.post('/health', key=None)) == auth.WRONG_PAYLOAD_STRUCTURE
    assert refused(relay.post('/health', key='  ')) == auth.WRONG_PAYLOAD_STRUCTURE


def test_jwks_is_fetched_once_and_cached(relay, jwks):
    jwks.reset_stats()
    for _ in range(3):
        assert relay.health() == {'data': {'status': 'ok'}}
    assert jwks.requests == 1


def test_rotated_key_is_picked_up_with_one_refresh(make_relay, jwks):
    relay = make_relay(jwks_refresh_min_interval_s=0)
    assert relay.health() == {'data': {'status': 'ok'}}
    jwks.reset_stats()
    jwks.rotate()
    assert relay.health() == {'data': {'status': 'ok'}}
    assert jwks.requests == 1


def test_api_key_outside_latin1(relay, spycloud):
    assert refused(relay.post('/health', key='ключ')) == UNSENDABLE_KEY
    assert spycloud.stats()['requests'] == 0


@pytest.mark.parametrize(
    'key',
    ['spycloud-sim\n-key', 'spycloud-sim\r\n-key', 'spycloud\r-sim-key', 'spycloud-sim-key\x00x'],
)
@pytest.mark.parametrize('path', ['/health', '/observe/observables'])
def test_a_key_with_a_line_break_is_refused_unquoted(relay, spycloud, caplog, key, path):
    """A wrapped paste: requests would raise InvalidHeader quoting the key."""
    caplog.set_level(logging.DEBUG)
    body = [{'type': 'email', 'value': 'r1c1@wrapped.example'}]
    assert refused(relay.post(path, body, key=key)) == UNSENDABLE_KEY
    assert spycloud.stats()['requests'] == 0
    logged = '\n'.join(JsonFormatter().format(r) for r in caplog.records)
    for part in ('spycloud-sim', '-key', 'sim-key'):
        assert part not in logged


def test_limit_is_per_request_not_shared(relay, spycloud):
    """Two tenants on one worker: each gets its own limit (Cisco's relay shared app.config)."""
    observable = [{'type': 'email', 'value': 'r30c3@tenant.example'}]
    small = relay.observe(observable, CTR_ENTITIES_LIMIT=2)
    large = relay.observe(observable, CTR_ENTITIES_LIMIT=25)
    default = relay.observe(observable)
    assert small['data']['sightings']['count'] == 2
    assert large['data']['sightings']['count'] == 25
    assert default['data']['sightings']['count'] == 30
