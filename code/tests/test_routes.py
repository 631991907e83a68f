"""The small endpoints, served over HTTP."""

import logging

import requests

from spycloud_relay.app import create_app
from spycloud_relay.config import VERSION
from spycloud_relay.spycloud.client import SpyCloudClient
from support import HEALTH, relay_settings


def test_version_answers_semver_unwrapped(relay):
    response = requests.post(relay.url + '/version', timeout=5)
    assert response.status_code == 200
    assert response.json() == {'version': VERSION}
    assert VERSION.count('.') == 2


def test_watchdog_echoes_health_check_header(relay):
    response = requests.get(relay.url + '/watchdog', headers={'Health-Check': 'probe-1'}, timeout=5)
    assert response.json() == {'data': 'probe-1'}


def test_watchdog_without_header_fails_in_envelope(relay):
    response = requests.get(relay.url + '/watchdog', timeout=5)
    assert response.status_code == 200
    assert response.json() == {
        'errors': [
            {'type': 'fatal', 'code': 'health check failed', 'message': 'Invalid Health Check'}
        ]
    }


def test_routes_ignore_trailing_slash(relay):
    assert requests.post(relay.url + '/version/', timeout=5).json() == {'version': VERSION}
    response = requests.get(relay.url + '/watchdog/', headers={'Health-Check': 'x'}, timeout=5)
    assert response.json() == {'data': 'x'}
    assert relay.post('/health/').json() == {'data': {'status': 'ok'}}


def test_unknown_route_and_wrong_method_keep_their_status(relay):
    missing = requests.post(relay.url + '/assets/resolve', timeout=5)  # an XDR route not served
    assert missing.status_code == 404
    assert missing.json()['errors'][0]['code'] == 'not found'
    wrong = requests.get(relay.url + '/observe/observables', timeout=5)
    assert wrong.status_code == 405
    assert wrong.json()['errors'][0]['code'] == 'method not allowed'


def test_health_makes_one_authenticated_spycloud_call(relay, spycloud):
    body = relay.health()
    assert body == {'data': {'status': 'ok'}}
    HEALTH.validate(body['data'])
    log = spycloud.request_log
    assert len(log) == 1
    assert log[0]['api_key'] == 'spycloud-sim-key'


def test_health_reports_a_rejected_api_key(relay, spycloud):
    body = relay.health(key='not-a-key')
    assert body['errors'][0]['code'] == 'authorization error'
    assert 'Forbidden' in body['errors'][0]['message']
    assert 'Invalid API key' in body['errors'][0]['message']


def test_request_id_is_echoed_or_made(relay):
    mine = requests.post(relay.url + '/version', headers={'X-Request-Id': 'abc-123'}, timeout=5)
    assert mine.headers['X-Request-Id'] == 'abc-123'
    made = requests.post(relay.url + '/version', headers={'X-Request-Id': 'bad id!'}, timeout=5)
    assert made.headers['X-Request-Id'] not in ('', 'bad id!')


def test_options_is_a_wrong_method_in_the_envelope(relay):
    for path in ('/observe/observables', '/health', '/version', '/watchdog', '/nowhere'):
        response = requests.options(relay.url + path, timeout=5)
        assert response.headers['Content-Type'] == 'application/json', path
        (error,) = response.json()['errors']
        if path == '/nowhere':
            assert response.status_code == 404 and error['code'] == 'not found'
        else:
            assert response.status_code == 405 and error['code'] == 'method not allowed', path
            assert 'OPTIONS' not in response.headers['Allow']


def test_start_up_warns_when_the_audience_is_not_set(spycloud, jwks, caplog):
    with (
        caplog.at_level(logging.WARNING, logger='spycloud_relay.app'),
        SpyCloudClient(relay_settings(spycloud, jwks)) as client,
    ):
        create_app(relay_settings(spycloud, jwks), spycloud=client)
    assert any('JWT_AUDIENCE is not set' in r.getMessage() for r in caplog.records)
    caplog.clear()
    audience = relay_settings(spycloud, jwks, jwt_audience='https://relay.example')
    with (
        caplog.at_level(logging.WARNING, logger='spycloud_relay.app'),
        SpyCloudClient(audience) as client,
    ):
        create_app(audience, spycloud=client)
    assert not any('JWT_AUDIENCE' in r.getMessage() for r in caplog.records)
