"""Every way a configuration token can fail, through the relay's HTTP port."""
import base64
import json
import logging
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from api import auth
from logs import JsonFormatter
from spycloud.transport import UNSENDABLE_KEY
from simulator import JwksIssuer


def auth_error(response):
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ['errors'], body
    (error,) = body['errors']
    assert error['type'] == 'fatal'
    assert error['code'] == 'authorization error'
    assert error['message'].startswith('Authorization failed: ')
    return error['message'][len('Authorization failed: '):]


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b'=').decode()


@pytest.mark.parametrize('path', ['/health', '/observe/observables'])
def test_missing_header(relay, path):
    response = relay.post(path, [], headers={'Authorization': ''})
    assert auth_error(response) == auth.NO_AUTH_HEADER


@pytest.mark.parametrize('header', ['Basic abc', 'Bearer', 'Bearer a b', 'token'])
def test_wrong_authorization_type(relay, header):
    assert auth_error(relay.post('/health', headers={'Authorization': header})) == \
        auth.WRONG_AUTH_TYPE


@pytest.mark.parametrize('token', ['abc', 'a.b.c', 'x' * 20000])
def test_wrong_jwt_structure(relay, token):
    assert auth_error(relay.post('/health', token=token)) == auth.WRONG_JWT_STRUCTURE


def test_scheme_is_case_insensitive(relay):
    response = relay.post('/health', headers={'Authorization': f'bearer {relay.token()}'})
    assert response.json() == {'data': {'status': 'ok'}}


def test_missing_jwks_host(relay):
    assert auth_error(relay.post('/health', jwks_host=None)) == auth.JWKS_HOST_MISSING


def test_host_off_the_allow_list_is_never_contacted(relay):
    canary = JwksIssuer().start()
    try:
        token = canary.mint(relay.url)  # names the canary as its jwks_host
        assert auth_error(relay.post('/health', token=token)) == auth.WRONG_JWKS_HOST
        assert canary.requests == 0
    finally:
        canary.stop()


def test_wrong_audience(relay):
    assert auth_error(relay.post('/health', aud='https://other.example')) == auth.WRONG_AUDIENCE


def test_missing_audience(relay):
    assert auth_error(relay.post('/health', aud=None)) == auth.WRONG_AUDIENCE


def test_audience_setting_overrides_request_root(make_relay):
    relay = make_relay(jwt_audience='https://relay.example/')
    assert relay.post('/health', aud='https://relay.example').json() == \
        {'data': {'status': 'ok'}}
    assert auth_error(relay.post('/health')) == auth.WRONG_AUDIENCE


def test_signature_from_another_key(relay, jwks):
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert auth_error(relay.post('/health', token=jwks.mint(relay.url, signing_key=forged))) == \
        auth.WRONG_KEY


def test_tampered_payload(relay):
    header, payload, signature = relay.token().split('.')
    claims = json.loads(base64.urlsafe_b64decode(payload + '=='))
    claims['key'] = 'someone-elses-key'
    tampered = '.'.join([header, b64(claims), signature])
    assert auth_error(relay.post('/health', token=tampered)) == auth.WRONG_KEY


def test_hs256_signed_with_the_public_key_is_refused(relay, jwks):
    claims = {'jwks_host': jwks.jwks_host, 'aud': relay.url, 'key': 'k'}
    header = {'alg': 'HS256', 'kid': jwks.kid, 'typ': 'JWT'}
    signing_input = f'{b64(header)}.{b64(claims)}'
    token = f'{signing_input}.{b64("sig")}'
    assert auth_error(relay.post('/health', token=token)) == auth.WRONG_KEY


def test_alg_none_is_refused(relay, jwks):
    claims = {'jwks_host': jwks.jwks_host, 'aud': relay.url, 'key': 'k'}
    token = f'{b64({"alg": "none", "kid": jwks.kid})}.{b64(claims)}.'
    assert auth_error(relay.post('/health', token=token)) == auth.WRONG_KEY


def test_expired_and_not_yet_valid(relay):
    now = int(time.time())
    assert auth_error(relay.post('/health', exp=now - 60)) == auth.TOKEN_EXPIRED
    assert auth_error(relay.post('/health', nbf=now + 3600)) == auth.TOKEN_NOT_YET_VALID


def test_token_without_exp_is_accepted(relay):
    assert relay.post('/health', exp=None).json() == {'data': {'status': 'ok'}}


def test_missing_api_key_claim(relay):
    assert auth_error(relay.post('/health', key=None)) == auth.WRONG_PAYLOAD_STRUCTURE
    assert auth_error(relay.post('/health', key='  ')) == auth.WRONG_PAYLOAD_STRUCTURE


def test_unknown_kid(relay, jwks):
    assert auth_error(relay.post('/health', token=jwks.mint(relay.url, kid='nope'))) == \
        auth.KID_NOT_FOUND


def test_missing_kid(relay, jwks):
    header, payload, signature = relay.token().split('.')
    no_kid = b64({'alg': 'RS256', 'typ': 'JWT'})
    assert auth_error(relay.post('/health', token=f'{no_kid}.{payload}.{signature}')) == \
        auth.KID_NOT_FOUND


def test_jwks_is_fetched_once_and_cached(relay, jwks):
    jwks.reset_stats()
    for _ in range(3):
        assert relay.health() == {'data': {'status': 'ok'}}
    assert jwks.requests == 1


def test_forged_kids_do_not_hammer_the_jwks_host(relay, jwks):
    jwks.reset_stats()
    assert relay.health() == {'data': {'status': 'ok'}}
    for n in range(5):
        assert auth_error(relay.post('/health', token=jwks.mint(relay.url, kid=f'forged-{n}'))) \
            == auth.KID_NOT_FOUND
    assert jwks.requests == 1


def test_rotated_key_is_picked_up_with_one_refresh(make_relay, jwks):
    relay = make_relay(jwks_refresh_min_interval_s=0)
    assert relay.health() == {'data': {'status': 'ok'}}
    jwks.reset_stats()
    jwks.rotate()
    assert relay.health() == {'data': {'status': 'ok'}}
    assert jwks.requests == 1


def test_unreachable_or_broken_jwks_host(relay, jwks):
    jwks.mode = 'status'
    try:
        assert auth_error(relay.post('/health')) == auth.WRONG_JWKS_HOST
        jwks.mode = 'garbage'
        assert auth_error(relay.post('/health')) == auth.WRONG_JWKS_HOST
    finally:
        jwks.mode = 'ok'


def test_api_key_outside_latin1(relay, spycloud):
    assert auth_error(relay.post('/health', key='ключ')) == UNSENDABLE_KEY
    assert spycloud.stats()['requests'] == 0


@pytest.mark.parametrize('key', ['spycloud-sim\n-key', 'spycloud-sim\r\n-key',
                                 'spycloud\r-sim-key', 'spycloud-sim-key\x00x'])
@pytest.mark.parametrize('path', ['/health', '/observe/observables'])
def test_a_key_with_a_line_break_is_refused_unquoted(relay, spycloud, caplog, key, path):
    """A wrapped paste: requests would raise InvalidHeader quoting the key."""
    caplog.set_level(logging.DEBUG)
    body = [{'type': 'email', 'value': 'r1c1@wrapped.example'}]
    assert auth_error(relay.post(path, body, key=key)) == UNSENDABLE_KEY
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


def test_module_settings_helper_rejects_bad_claims():
    with pytest.raises(KeyError):
        auth.ModuleSettings.from_claims({})
    with pytest.raises(KeyError):
        auth.ModuleSettings.from_claims({'key': 42})
