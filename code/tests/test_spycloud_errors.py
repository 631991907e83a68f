"""How each SpyCloud answer that is an error reaches XDR, through the relay's HTTP port: the
statuses that are not retried, odd bodies and encodings, redirects, TLS, Retry-After.

Storms and bursts of retried statuses (429, 5xx), hangs, resets, cut and trickling bodies, and
the answers SpyCloud sends that are not JSON have their one home in test_failing_upstreams.py,
which also checks that each ends in time and that the relay serves the next request normally.
"""

import gzip
import json

import pytest
import trustme

from localrelay import free_port
from simulator import SpyCloudSimulator
from support import Canary, email, single_error

LOOKUP = [email('r3c1@errors.example')]


def test_401_is_an_authorization_error_with_spycloud_words(relay, spycloud):
    spycloud.add_fault(401, body={'message': 'Unauthorized'})
    error = single_error(relay.observe(LOOKUP))
    assert error == {
        'type': 'fatal',
        'code': 'authorization error',
        'message': 'Authorization failed: Unauthorized',
    }


def test_unknown_key_is_refused_by_spycloud(relay):
    error = single_error(relay.observe(LOOKUP, key='wrong-key'))
    assert error['message'] == 'Authorization failed: Forbidden (Invalid API key)'


def test_400_means_no_records(relay, spycloud):
    spycloud.refuse_parameter('email', match='emails')
    assert relay.observe(LOOKUP) == {'data': {}}


def test_404_is_not_found(relay, spycloud):
    spycloud.add_fault(404)
    error = single_error(relay.observe(LOOKUP))
    assert error['code'] == 'not found'
    assert 'SPYCLOUD_API_URL' in error['message']


def test_429_quota_is_not_retried_and_says_so(relay, spycloud):
    spycloud.quota_exhausted()
    error = single_error(relay.observe(LOOKUP))
    assert error['code'] == 'too many requests'
    assert 'monthly quota' in error['message']
    assert spycloud.stats()['requests'] == 1


def test_untrusted_certificate(make_relay, tmp_path):
    other_ca = trustme.CA()  # not in the relay's CA bundle
    cert = other_ca.issue_cert('127.0.0.1')
    cert_file, key_file = tmp_path / 'cert.pem', tmp_path / 'key.pem'
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    with SpyCloudSimulator(tls=(str(cert_file), str(key_file))) as tls_sim:
        relay = make_relay(spycloud_api_url=tls_sim.url)
        error = single_error(relay.observe(LOOKUP))
        assert tls_sim.stats()['by_endpoint']['emails'] == 0
    assert error['code'] == 'unknown'
    assert error['message'].startswith('Unable to verify SSL certificate: ')
    assert 'CERTIFICATE_VERIFY_FAILED' in error['message']


def test_connection_refused(make_relay):
    relay = make_relay(spycloud_api_url=f'http://127.0.0.1:{free_port()}/enterprise-v2/')
    error = single_error(relay.observe(LOOKUP))
    assert error['code'] == 'unknown'
    assert error['message'].startswith('Unable to connect to SpyCloud at 127.0.0.1:')


def test_timeout(make_relay, spycloud):
    relay = make_relay(read_timeout_s=0.3, spycloud_retries=0)
    spycloud.add_fault(mode='hang', delay=3)
    error = single_error(relay.observe(LOOKUP))
    assert error['code'] == 'unknown'
    assert 'did not answer in time' in error['message']


def test_health_maps_errors_too(relay, spycloud):
    spycloud.add_fault(500)
    assert single_error(relay.health())['code'] == 'internal error'


@pytest.fixture
def trap(jwks):
    """Where a followed redirect would go: a loopback listener that counts every connection
    (support.Canary counts them as it accepts, before any TLS)."""
    with Canary(jwks, 'silent') as listener:
        yield listener


@pytest.mark.parametrize('status', [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_the_key_goes_nowhere(relay, spycloud, trap, status):
    location = f'http://127.0.0.1:{trap.port}/enterprise-v2/breach/data/emails/x'
    spycloud.add_fault(status, mode='raw', headers={'Location': location}, body=b'{}')
    error = single_error(relay.observe(LOOKUP))
    assert error['code'] == 'unknown'
    assert f'HTTP {status}' in error['message'] and 'redirect' in error['message']
    assert str(trap.port) not in error['message']
    assert spycloud.stats()['requests'] == 1
    assert trap.connections == 0


def test_a_gzip_answer_is_decoded(relay, spycloud):
    plain = relay.observe(LOOKUP)
    spycloud.gzip = True
    packed = relay.observe(LOOKUP)
    assert packed == plain and plain['data']['sightings']['count'] == 3


def test_a_gzip_page_is_decoded(relay, spycloud):
    page = {
        'cursor': '',
        'hits': 1,
        'results': [
            {
                'document_id': 'gz-1',
                'source_id': 1,
                'spycloud_publish_date': '2024-01-02T00:00:00Z',
                'severity': 20,
                'email': 'r3c1@errors.example',
            }
        ],
    }
    spycloud.add_fault(
        200,
        mode='raw',
        match='emails',
        times=1,
        headers={'Content-Encoding': 'gzip'},
        body=gzip.compress(json.dumps(page).encode()),
    )
    body = relay.observe(LOOKUP)
    assert 'errors' not in body
    assert [s['external_ids'][0] for s in body['data']['sightings']['docs']] == ['gz-1']


def test_a_gzip_bomb_is_refused_at_the_decoded_cap(relay, spycloud):
    """40 MB of JSON in 40 KB: the 32 MiB cap counts decoded bytes."""
    bomb = b'{"results": [], "pad": "' + b' ' * (40 * 1024 * 1024) + b'"}'
    spycloud.add_fault(
        200,
        mode='raw',
        match='emails',
        headers={'Content-Encoding': 'gzip'},
        body=gzip.compress(bomb, 9),
    )
    error = single_error(relay.observe(LOOKUP))
    assert error['code'] == 'unknown'
    assert 'larger than 33554432 bytes' in error['message']


def test_a_body_that_does_not_decompress_is_unknown(relay, spycloud):
    spycloud.add_fault(
        200,
        mode='raw',
        match='emails',
        headers={'Content-Encoding': 'gzip'},
        body=b'this is not gzip',
    )
    error = single_error(relay.observe(LOOKUP))
    assert error == {
        'type': 'fatal',
        'code': 'unknown',
        'message': 'SpyCloud sent a compressed answer that does not decode.',
    }


def test_a_deeply_nested_answer_spoils_only_its_own_lookup(relay, spycloud):
    spycloud.add_fault(200, mode='raw', match='nested', body=b'[' * 100000)
    body = relay.observe([email('r3c1@nested.example'), *LOOKUP])
    errors = body['errors']
    assert errors == [
        {
            'type': 'fatal',
            'code': 'unknown',
            'message': 'SpyCloud sent an answer that is not valid JSON.',
        }
    ]
    assert body['data']['sightings']['count'] == 3  # the other observable's


@pytest.mark.parametrize(
    'retry_after',
    ['0.5', '0.05', '-1', '', 'soon', '0', 'inf', 'nan', 'Wed, 21 Oct 2015 07:28:00 GMT'],
)
def test_an_odd_retry_after_is_a_retry_not_an_error(relay, spycloud, retry_after):
    spycloud.add_fault(
        429,
        times=1,
        body={'message': 'Too Many Requests'},
        headers={'x-amzn-ErrorType': 'TooManyRequestsException', 'Retry-After': retry_after},
    )
    body = relay.observe(LOOKUP)
    assert 'errors' not in body and body['data']['sightings']['count'] == 3
    assert spycloud.stats()['by_endpoint']['emails'] == 2


@pytest.mark.parametrize('retry_after, wait', [('1', 1.0), ('0.4', 0.4)])
def test_retry_after_is_honoured(make_relay, spycloud, retry_after, wait):
    """The wait is SpyCloud's, whole or fractional, not the (here 10 ms) backoff."""
    relay = make_relay(spycloud_backoff_s=0.01)
    spycloud.add_fault(
        429,
        times=1,
        body={'message': 'Too Many Requests'},
        headers={'x-amzn-ErrorType': 'TooManyRequestsException', 'Retry-After': retry_after},
    )
    assert relay.observe(LOOKUP)['data']['sightings']['count'] == 3
    first, second = [e['time'] for e in spycloud.request_log if e['endpoint'] == 'emails']
    assert second - first >= wait
