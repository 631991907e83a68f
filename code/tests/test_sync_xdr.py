"""The sync's XDR client against the fake XDR over HTTP: the token (reused, renewed before its
end, renewed once on a 401), 429 and 5xx retried, refusals raised as XdrError, the import's
per-entity results, and never a secret in a message or a log line."""

import logging
import socket

import pytest

from simulator import DEFAULT_XDR_CLIENT
from spycloud_relay.config import ConfigError, Settings
from spycloud_relay.sync.xdr import RETRIES, ImportResult, XdrClient, XdrError

PREFIX = 'spycloud-relay'
CLIENT_ID, PASSWORD = DEFAULT_XDR_CLIENT
SETTINGS = Settings(connect_timeout_s=2.0, read_timeout_s=5.0)


class Clock:
    """The client's clock, moved by the test."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def client_for(xdr, password=PASSWORD, **kw):
    kw.setdefault('backoff_s', 0.01)
    return XdrClient(SETTINGS, xdr.url, CLIENT_ID, password, PREFIX, **kw)


def bundle(name='a', sighting='a'):
    incident_ref, sighting_ref = f'transient:incident-{name}', f'transient:sighting-{sighting}'
    return {
        'type': 'bundle',
        'source': 'SpyCloud',
        'incidents': [
            {
                'id': incident_ref,
                'type': 'incident',
                'schema_version': '1.3.29',
                'confidence': 'High',
                'status': 'New',
                'incident_time': {'opened': '2024-12-03T00:00:00.000Z'},
                'external_ids': [f'{PREFIX}-incident-{name}'],
            }
        ],
        'sightings': [
            {
                'id': sighting_ref,
                'type': 'sighting',
                'schema_version': '1.3.29',
                'confidence': 'High',
                'count': 1,
                'observed_time': {'start_time': '2024-12-03T00:00:00.000Z'},
                'external_ids': [f'{PREFIX}-sighting-{sighting}'],
            }
        ],
        'relationships': [
            {
                'id': f'transient:relationship-{name}-{sighting}',
                'type': 'relationship',
                'schema_version': '1.3.29',
                'relationship_type': 'member-of',
                'source_ref': sighting_ref,
                'target_ref': incident_ref,
                'external_ids': [f'{PREFIX}-relationship-{name}-{sighting}'],
            }
        ],
    }


def endpoints(xdr):
    return [(entry['endpoint'], entry['status']) for entry in xdr.request_log]


# -- the token -------------------------------------------------------------------------------


def test_one_token_serves_many_imports(xdr):
    with client_for(xdr) as client:
        for name in 'abc':
            client.import_bundle(bundle(name, name))
        assert client.requests_made == 4
    assert xdr.count('token') == 1 and xdr.count('import') == 3
    assert len({entry['token'] for entry in xdr.request_log if entry['token']}) == 1


def test_the_token_is_renewed_a_minute_before_its_end(xdr):
    clock = Clock()
    with client_for(xdr, clock=clock) as client:
        client.import_bundle(bundle('a', 'a'))
        clock.now += 600 - 61  # 61 s left: still used
        client.import_bundle(bundle('b', 'b'))
        assert xdr.count('token') == 1
        clock.now += 2  # 59 s left: renewed before the call
        client.import_bundle(bundle('c', 'c'))
    assert endpoints(xdr) == [
        ('token', 200),
        ('import', 200),
        ('import', 200),
        ('token', 200),
        ('import', 200),
    ]
    imports = [entry['token'] for entry in xdr.request_log if entry['endpoint'] == 'import']
    assert imports[0] == imports[1] != imports[2]


def test_a_401_gets_a_new_token_once_and_the_import_succeeds(xdr):
    with client_for(xdr) as client:
        client.import_bundle(bundle('a', 'a'))
        xdr.expire_tokens()  # revoked before its time
        got = client.import_bundle(bundle('b', 'b'))
    assert [r.result for r in got] == ['created'] * 3
    assert endpoints(xdr) == [
        ('token', 200),
        ('import', 200),
        ('import', 401),
        ('token', 200),
        ('import', 200),
    ]


def test_a_second_401_raises_xdr_unauthorized(xdr):
    xdr.add_fault(401, match='bundle/import', times=2, body={'error': 'invalid_token'})
    with client_for(xdr) as client, pytest.raises(XdrError) as raised:
        client.import_bundle(bundle())
    assert raised.value.code == 'xdr unauthorized'
    assert 'private-intel' in raised.value.message
    assert endpoints(xdr) == [('token', 200), ('import', 401), ('token', 200), ('import', 401)]
    assert xdr.entities('incident') == []


def test_an_unknown_client_raises_naming_the_settings_not_the_password(xdr):
    with client_for(xdr, password='not-the-password') as client, pytest.raises(XdrError) as raised:
        client.import_bundle(bundle())
    assert raised.value.code == 'xdr unauthorized'
    assert 'XDR_CLIENT_ID' in raised.value.message and 'HTTP 401' in raised.value.message
    assert 'not-the-password' not in raised.value.message
    assert endpoints(xdr) == [('token', 401)]  # a refused client is not asked again


def test_a_5xx_of_the_token_endpoint_is_retried(xdr):
    xdr.add_fault(502, match='oauth2/token', times=1)
    with client_for(xdr) as client:
        client.import_bundle(bundle())
    assert endpoints(xdr) == [('token', 502), ('token', 200), ('import', 200)]


# -- retries ---------------------------------------------------------------------------------


def test_a_429_waits_its_retry_after_and_sends_again(xdr):
    xdr.throttle(times=2, retry_after=0.25, match='bundle/import')
    with client_for(xdr) as client:
        got = client.import_bundle(bundle())
        assert client.requests_made == 4
    assert [r.result for r in got] == ['created'] * 3
    log = xdr.request_log
    assert [entry['status'] for entry in log] == [200, 429, 429, 200]
    gaps = [log[n + 1]['time'] - log[n]['time'] for n in (1, 2)]
    assert all(gap >= 0.25 for gap in gaps), gaps  # Retry-After, not the 0.01 s backoff


def test_a_5xx_is_sent_again(xdr):
    xdr.add_fault(503, match='bundle/import', times=2)
    with client_for(xdr) as client:
        got = client.import_bundle(bundle())
    assert [r.result for r in got] == ['created'] * 3
    assert endpoints(xdr) == [('token', 200), ('import', 503), ('import', 503), ('import', 200)]
    assert len(xdr.entities('incident')) == 1


def test_a_5xx_that_lasts_raises_after_the_retries(xdr):
    xdr.add_fault(500, match='bundle/import')
    with client_for(xdr) as client, pytest.raises(XdrError) as raised:
        client.import_bundle(bundle())
    assert raised.value.code == 'xdr unavailable' and 'HTTP 500' in raised.value.message
    assert xdr.count('import') == RETRIES + 1


def test_a_dropped_connection_is_sent_again(xdr):
    xdr.add_fault(mode='reset', match='bundle/import', times=1)
    with client_for(xdr) as client:
        got = client.import_bundle(bundle())
    assert [r.result for r in got] == ['created'] * 3
    assert xdr.count('import') == 2 and len(xdr.entities('incident')) == 1


def test_an_unreachable_xdr_raises_after_the_retries():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    client = XdrClient(SETTINGS, f'http://127.0.0.1:{port}', CLIENT_ID, PASSWORD, backoff_s=0.01)
    with client, pytest.raises(XdrError) as raised:
        client.import_bundle(bundle())
    assert raised.value.code == 'xdr unreachable'
    assert client.requests_made == RETRIES + 1


# -- refusals and results --------------------------------------------------------------------


def test_a_bundle_over_the_entity_limit_raises_naming_it(xdr):
    xdr.entity_limit = 2
    with client_for(xdr) as client, pytest.raises(XdrError) as raised:
        client.import_bundle(bundle())
    assert raised.value.code == 'xdr bad request'
    assert 'HTTP 400' in raised.value.message and 'entities exceeded: 3 > 2' in raised.value.message
    assert xdr.count('import') == 1  # a refusal is not sent again


def test_created_then_exists_on_a_reimport(xdr):
    with client_for(xdr) as client:
        first = client.import_bundle(bundle())
        second = client.import_bundle(bundle())
    assert [r.result for r in first] == ['created'] * 3
    assert [r.result for r in second] == ['exists'] * 3
    assert [r.id for r in first] == [r.id for r in second]
    assert first[0] == ImportResult(
        type='incident',
        original_id='transient:incident-a',
        id=first[0].id,
        result='created',
        external_ids=(f'{PREFIX}-incident-a',),
        error=None,
    )
    assert len(xdr.entities('incident')) == 1 and len(xdr.entities('relationship')) == 1


def test_a_new_sighting_attaches_to_the_stored_incident(xdr):
    with client_for(xdr) as client:
        incident_id = client.import_bundle(bundle('a', 'first'))[0].id
        got = client.import_bundle(bundle('a', 'second'))
    assert [r.result for r in got] == ['exists', 'created', 'created']
    assert got[0].id == incident_id
    stored = {r['id']: r for r in xdr.entities('relationship')}
    assert stored[got[2].id]['target_ref'] == incident_id
    assert stored[got[2].id]['source_ref'] == got[1].id


def test_an_invalid_entity_comes_back_as_an_error_result(xdr):
    invalid = bundle()
    invalid['incidents'][0]['status'] = 'Triage'
    with client_for(xdr) as client:
        got = client.import_bundle(invalid)
    assert [r.result for r in got] == ['error', 'created', 'error']
    assert got[0].error and 'status' in got[0].error
    assert got[0].external_ids == (f'{PREFIX}-incident-a',)


def test_an_answer_that_is_not_json_raises(xdr):
    xdr.add_fault(200, mode='raw', body=b'<html>', match='bundle/import')
    with client_for(xdr) as client, pytest.raises(XdrError) as raised:
        client.import_bundle(bundle())
    assert raised.value.code == 'xdr unknown'


def test_an_api_url_that_is_no_http_url_is_a_config_error():
    with pytest.raises(ConfigError, match='XDR_API_URL'):
        XdrClient(SETTINGS, 'visibility.amp.cisco.com', CLIENT_ID, PASSWORD)


# -- secrets ---------------------------------------------------------------------------------


def test_no_password_or_token_in_any_message_or_log_line(xdr, caplog):
    caplog.set_level(logging.DEBUG)
    messages = []
    with client_for(xdr) as client:
        client.import_bundle(bundle('a', 'a'))
        xdr.expire_tokens()
        xdr.throttle(retry_after=0.01, match='bundle/import')
        xdr.add_fault(503, match='bundle/import', times=1)
        client.import_bundle(bundle('b', 'b'))
        # An XDR that echoes the credentials in its refusal: they are scrubbed.
        xdr.add_fault(400, match='bundle/import', body={'error': f'{CLIENT_ID}:{PASSWORD}'})
        with pytest.raises(XdrError) as echoed:
            client.import_bundle(bundle('c', 'c'))
        messages.append(echoed.value.message)
        xdr.add_fault(401, match='bundle/import', times=2)
        with pytest.raises(XdrError) as refused:
            client.import_bundle(bundle('d', 'd'))
        messages.append(refused.value.message)
    tokens = {entry['token'] for entry in xdr.request_log if entry['token']}
    assert len(tokens) >= 2 and caplog.records  # the retries were logged
    assert '***' in messages[0]
    for secret in (PASSWORD, *tokens):
        assert secret not in caplog.text
        assert all(secret not in message for message in messages)
