"""SpyCloud misbehaving in every way the simulator knows: the right answer, in time, and the
relay serves the next request normally.

The one home of storms and bursts of retried statuses (429, 5xx), hangs, resets, bodies cut
short or trickling, and answers that are not JSON; test_spycloud_errors.py has the rest.
"""

import time

import pytest
import requests

from simulator import DEFAULT_API_KEY
from spycloud_relay.spycloud.records import STALE_PAGES
from support import email, single_error, wait_until

DEADLINE = 2.0
GOOD = [email('r3c2@healthy.example')]
LOOKUP = [email('r3c2@faulty.example')]


@pytest.fixture
def relay(make_relay):
    return make_relay(lookup_deadline_s=DEADLINE, read_timeout_s=DEADLINE)


def observe_in_time(relay, observables=LOOKUP):
    started = time.monotonic()
    body = relay.observe(observables)
    assert time.monotonic() - started < DEADLINE + 1.0
    return body


def then_healthy(relay, spycloud):
    spycloud.clear_faults()
    body = relay.observe(GOOD)
    assert body['data']['sightings']['count'] == 3 and 'errors' not in body


def test_429_storm(relay, spycloud):
    spycloud.throttle(times=None)
    error = single_error(observe_in_time(relay), 'too many requests')
    assert 'try again later' in error['message']
    assert spycloud.stats()['requests'] == 4  # the first try and three retries
    then_healthy(relay, spycloud)


def test_429_burst_is_absorbed(relay, spycloud):
    spycloud.throttle(times=2)
    body = observe_in_time(relay)
    assert body['data']['sightings']['count'] == 3 and 'errors' not in body


def test_500_storm_is_an_internal_error_at_once(relay, spycloud):
    spycloud.add_fault(500, body={'errorMessage': 'boom'})
    assert single_error(observe_in_time(relay)) == {
        'type': 'fatal',
        'code': 'internal error',
        'message': 'The SpyCloud internal error: boom',
    }
    assert spycloud.stats()['requests'] == 1  # a 500 is not retried
    then_healthy(relay, spycloud)


@pytest.mark.parametrize('status', [502, 503, 504])
def test_gateway_error_storm_is_retried_then_unknown(relay, spycloud, status):
    spycloud.add_fault(status)
    error = single_error(observe_in_time(relay), 'unknown')
    assert f'HTTP {status}' in error['message']
    assert spycloud.stats()['requests'] == 4
    then_healthy(relay, spycloud)


@pytest.mark.parametrize('status', [502, 503, 504])
def test_5xx_burst_is_absorbed(relay, spycloud, status):
    spycloud.add_fault(status, times=2)
    body = observe_in_time(relay)
    assert body['data']['sightings']['count'] == 3 and 'errors' not in body


def test_connection_resets(relay, spycloud):
    spycloud.add_fault(mode='reset')
    error = single_error(observe_in_time(relay))
    assert error['code'] == 'unknown'
    assert error['message'].startswith('Unable to connect to SpyCloud at 127.0.0.1:')
    then_healthy(relay, spycloud)


def test_a_server_that_never_answers(relay, spycloud):
    spycloud.add_fault(mode='hang', delay=30)
    body = observe_in_time(relay)
    assert body['errors'][0]['code'] == 'deadline exceeded'
    assert body['errors'][0]['type'] == 'warning'
    then_healthy(relay, spycloud)


def test_catalogs_that_never_answer_still_give_sightings(relay, spycloud):
    spycloud.add_fault(mode='hang', delay=30, match='catalog')
    body = observe_in_time(relay)
    assert body['data']['sightings']['count'] == 3
    assert [e['code'] for e in body['errors']] == ['deadline exceeded']
    then_healthy(relay, spycloud)


def test_truncated_json(relay, spycloud):
    spycloud.add_fault(mode='truncated')
    assert single_error(observe_in_time(relay)) == {
        'type': 'fatal',
        'code': 'unknown',
        'message': 'SpyCloud sent an answer that is not valid JSON.',
    }
    then_healthy(relay, spycloud)


def test_body_cut_off_mid_transfer(relay, spycloud):
    spycloud.add_fault(mode='incomplete')
    error = single_error(observe_in_time(relay))
    assert error['code'] == 'unknown'
    assert error['message'].startswith('The request to SpyCloud failed')
    then_healthy(relay, spycloud)


@pytest.mark.parametrize(
    'status, code, words', [(500, 'internal error', 'internal error'), (502, 'unknown', 'HTTP 502')]
)
def test_html_error_page_is_read_as_a_reason(relay, spycloud, status, code, words):
    spycloud.add_fault(status, mode='html')
    error = single_error(observe_in_time(relay), code)
    assert words in error['message']
    assert '<' not in error['message'] and len(error['message']) <= 400
    then_healthy(relay, spycloud)


def test_html_with_a_200(relay, spycloud):
    spycloud.add_fault(200, mode='html')
    assert (
        single_error(observe_in_time(relay))['message']
        == 'SpyCloud sent an answer that is not valid JSON.'
    )


def test_json_under_a_wrong_content_type_is_still_read(relay, spycloud):
    spycloud.add_fault(
        200,
        match='emails',
        headers={'Content-Type': 'text/plain'},
        body={'cursor': '', 'hits': 0, 'results': []},
    )
    assert observe_in_time(relay) == {'data': {}}


def test_json_of_the_wrong_shape(relay, spycloud):
    spycloud.add_fault(200, match='emails', body=['not', 'an', 'object'])
    assert (
        single_error(observe_in_time(relay))['message']
        == 'SpyCloud sent an answer of an unexpected shape.'
    )
    spycloud.clear_faults()
    spycloud.add_fault(200, match='emails', body={'hits': 'many', 'results': 'none'})
    assert observe_in_time(relay) == {'data': {}}


def test_expired_cursor(relay, spycloud):
    spycloud.page_size = 2
    spycloud.refuse_parameter('cursor', 'Cursor not found.', match='cursor=')
    body = observe_in_time(relay)
    assert body['data']['sightings']['count'] == 2  # the first page is kept
    assert body['errors'][0]['code'] == 'incomplete'
    assert 'expired after 1 page' in body['errors'][0]['message']
    spycloud.page_size = 1000
    then_healthy(relay, spycloud)


def test_forbidden_ip(relay, spycloud):
    spycloud.forbidden_ip()
    error = single_error(observe_in_time(relay))
    assert error == {
        'type': 'fatal',
        'code': 'authorization error',
        'message': 'Authorization failed: Forbidden (Invalid IP 1.2.3.4)',
    }
    then_healthy(relay, spycloud)


def test_upstream_message_is_trimmed(relay, spycloud):
    spycloud.add_fault(500, body={'errorMessage': 'x' * 5000})
    error = single_error(observe_in_time(relay))
    assert len(error['message']) < 400


def test_health_that_times_out_is_not_ok(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=0.5, read_timeout_s=0.5)
    spycloud.add_fault(mode='hang', delay=30)
    started = time.monotonic()
    body = relay.health()
    assert time.monotonic() - started < 1.5
    assert body == {
        'errors': [
            {
                'type': 'fatal',
                'code': 'unknown',
                'message': 'SpyCloud did not answer the health check within 0.5 s.',
            }
        ]
    }


def test_a_trickling_answer_cannot_outlast_the_deadline(relay, spycloud):
    """A byte every 0.2 s: no single read times out, yet the lookup ends at its deadline."""
    spycloud.add_fault(mode='drip', match='emails', delay=0.2)
    body = observe_in_time(relay)
    assert body['errors'][0]['code'] == 'deadline exceeded'
    assert wait_until(lambda: relay.spycloud.in_flight == 0)  # the trickle's thread let go
    then_healthy(relay, spycloud)


def test_an_oversized_answer_is_refused(relay, spycloud, monkeypatch):
    from spycloud_relay.spycloud import transport

    monkeypatch.setattr(transport, 'MAX_BODY_BYTES', 4096)
    spycloud.add_fault(
        200, match='emails', body={'cursor': '', 'hits': 0, 'results': [], 'pad': 'x' * 10000}
    )
    assert single_error(observe_in_time(relay)) == {
        'type': 'fatal',
        'code': 'unknown',
        'message': 'SpyCloud sent an answer larger than 4096 bytes.',
    }


PAGED = [email('r3c2@paged.example')]


@pytest.mark.parametrize(
    'fault',
    [
        dict(status=500),
        dict(status=503),
        dict(status=429),
        dict(mode='reset'),
        dict(mode='truncated'),
        dict(mode='raw', body=b'[' * 100000),
    ],
)
def test_a_failing_later_page_keeps_the_pages_before_it(relay, spycloud, fault):
    spycloud.page_size = 1
    spycloud.add_fault(match='cursor=', **fault)
    body = observe_in_time(relay, PAGED)
    assert body['data']['sightings']['count'] == 1  # page 1 arrived: it is shown
    (warning,) = body['errors']
    assert warning['type'] == 'warning'
    assert warning['message'].startswith(
        'SpyCloud failed on page 2 of the records of r3c2@paged.example ('
    )
    assert warning['message'].endswith('the 1 record(s) of the first 1 page(s) are shown.')
    then_healthy(relay, spycloud)


@pytest.mark.parametrize('again', ['nothing', 'the first page'])
def test_a_cursor_that_goes_round_is_stopped_after_pages_with_nothing_new(relay, spycloud, again):
    """A cursor that keeps coming back with nothing new would be followed until the deadline,
    call after call: three such pages in a row stop it, the records read are shown."""
    spycloud.page_size = 1
    (value,) = (o['value'] for o in PAGED)
    first = requests.get(
        f'{spycloud.url}breach/data/emails/{value}',
        headers={'X-API-Key': DEFAULT_API_KEY},
        timeout=10,
    ).json()
    results = first['results'] if again == 'the first page' else []
    round_page = {'cursor': 'round', 'hits': first['hits'], 'results': results}
    spycloud.add_fault(200, match='cursor=', body=round_page)
    spycloud.reset_stats()
    body = observe_in_time(relay, PAGED)
    pages = [e for e in spycloud.request_log if 'cursor' in e['query']]
    assert len(pages) == STALE_PAGES  # then no more: the first page and three going round
    assert body['data']['sightings']['count'] == 1
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'incomplete', warning
    assert 'brought no new record' in warning['message'] and value in warning['message']
    then_healthy(relay, spycloud)
