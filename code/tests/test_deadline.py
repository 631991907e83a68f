"""The lookup deadline holds when SpyCloud hangs, on every endpoint that calls SpyCloud.

The relay runs under gunicorn with the image's configuration, a lookup deadline of DEADLINE
seconds and a read timeout a little shorter (as the defaults are: 25 and 20 s), so that a wait
the deadline did not cap shows as an answer far too late. SpyCloud hangs in each way
the simulator knows: no answer at all, a head then a stalled body, a 503 that asks to come back
later, a rate budget that cannot serve in time. Each answer must come within the deadline, plus
a margin far below the read timeout a slow machine cannot eat, and say the deadline ran out.
"""

import time

import pytest

from localrelay import gunicorn_relay
from support import RelayAt, email

DEADLINE = 4.0
READ_TIMEOUT = 3.5
# Far above what a slow machine adds to the deadline, below what an uncapped wait adds: a read
# retry given a fresh READ_TIMEOUT, a body waited for from when the call was sent rather than
# from when its head came (both answer after about 7 s).
MARGIN = 2.0
ACCOUNTS = [email(f'r3c2@hang{n}.example') for n in range(5)]


@pytest.fixture(scope='module')
def served(spycloud_server, jwks, tmp_path_factory):
    log_path = tmp_path_factory.mktemp('deadline') / 'relay.log'
    env = dict(
        WEB_CONCURRENCY=1,
        LOOKUP_DEADLINE_S=DEADLINE,
        READ_TIMEOUT_S=READ_TIMEOUT,
        SPYCLOUD_BACKOFF_S=0.01,
    )
    with (
        open(log_path, 'w') as output,
        gunicorn_relay(spycloud_server, jwks, output=output, **env) as url,
    ):
        yield RelayAt(url, jwks, log_path, env=env)


@pytest.fixture
def relay(served, spycloud):
    return served


def timed(call):
    """What ``call`` answered, asserted to come within the deadline and its margin."""
    started = time.monotonic()
    body = call()
    assert time.monotonic() - started < DEADLINE + MARGIN, body
    return body


HANGS = {
    'no answer': dict(mode='hang', delay=60),
    'a head, then a stalled body': dict(mode='stall', delay=READ_TIMEOUT - 0.1),
    'a 503 to retry later': dict(status=503, headers={'Retry-After': '1'}),
}
# A retry whose pause would end past the deadline is not started: the last answer stands.
LAST_ANSWER = {'a 503 to retry later': 'SpyCloud answered HTTP 503'}


@pytest.fixture(params=sorted(HANGS))
def hanging(request, spycloud):
    spycloud.add_fault(**HANGS[request.param])
    return request.param


def said_deadline(body, hanging='no answer'):
    """The answer says the deadline ran out: a ``deadline exceeded`` warning, or (health, a
    trigger) an error that SpyCloud did not answer within it; for a 503, the status it
    stopped at."""
    errors = body.get('errors', [])
    if hanging in LAST_ANSWER:
        return any(LAST_ANSWER[hanging] in error['message'] for error in errors)
    return any(
        error['code'] == 'deadline exceeded'
        or f'did not answer the health check within {DEADLINE:g} s' in error['message']
        or f'did not answer within {DEADLINE:g} s' in error['message']
        for error in errors
    )


@pytest.mark.parametrize('observables', [ACCOUNTS[:1], ACCOUNTS], ids=['one', 'many'])
def test_observe(relay, hanging, observables):
    body = timed(lambda: relay.observe(observables))
    assert said_deadline(body, hanging)


@pytest.mark.parametrize('observables', [ACCOUNTS[:1], ACCOUNTS], ids=['one', 'many'])
def test_deliberate(relay, hanging, observables):
    body = timed(lambda: relay.deliberate(observables))
    assert said_deadline(body, hanging)


def test_respond_observables(relay, hanging):
    response = timed(lambda: relay.post('/respond/observables', ACCOUNTS[:2]))
    assert response.status_code == 200 and said_deadline(response.json(), hanging)


def test_respond_trigger_verify(relay, hanging):
    payload = {
        'action-id': 'spycloud-watchlist-verify',
        'observable_type': 'domain',
        'observable_value': 'pending.example',
        'watchlist_type': 'domain',
    }
    response = timed(lambda: relay.post('/respond/trigger', payload))
    assert response.status_code == 200 and said_deadline(response.json(), hanging)


def test_health(relay, hanging):
    response = timed(lambda: relay.post('/health'))
    assert response.status_code == 200 and said_deadline(response.json(), hanging)


def test_tiles(relay, hanging):
    body = {'tile_id': 'spycloud-exposure-summary', 'period': 'last_24_hours'}
    response = timed(lambda: relay.post('/tiles/tile-data', body))
    assert response.status_code == 200 and said_deadline(response.json(), hanging)


def test_a_rate_budget_that_cannot_serve_in_time(spycloud_server, spycloud, jwks):
    """One call a minute: the second account's call would wait past the deadline."""
    env = dict(WEB_CONCURRENCY=1, LOOKUP_DEADLINE_S=DEADLINE, SPYCLOUD_RATE_LIMIT=1 / 60)
    with gunicorn_relay(spycloud_server, jwks, SPYCLOUD_BURST=1, **env) as url:
        relay = RelayAt(url, jwks)
        body = timed(lambda: relay.observe(ACCOUNTS[:3]))
    assert said_deadline(body)
    assert body['data']['sightings']['count'] == 3  # the one call that fitted was answered
