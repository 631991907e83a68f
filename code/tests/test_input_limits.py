"""Input limits, over HTTP: body size, observables per request, length of a value.

Each limit is answered with the relay's envelope (HTTP 200, a single fatal `invalid argument`
naming the setting), never a bare 413 or a 500. The observable limits apply to what the relay
would look up: unsupported types are dropped and duplicates removed first.
"""

import json
import socket

import pytest
import requests

from support import email, single_error

PATH = '/observe/observables'


def invalid_argument(response):
    return single_error(response, 'invalid argument')['message']


def emails(count, template='r1c1-{n}@limits.example'):
    return [email(template.format(n=n)) for n in range(count)]


def sightings(body):
    return body.get('data', {}).get('sightings', {}).get('count', 0)


# -- body size --------------------------------------------------------------------------------


def test_body_over_the_default_limit(relay):
    body = json.dumps([email('r1c1@limits.example')]).encode()
    padded = body[:-1] + b' ' * (1024 * 1024 - len(body) + 1) + b']'
    assert len(padded) == 1024 * 1024 + 1
    message = invalid_argument(relay.post(PATH, data=padded))
    assert message == ('Request body too large: the limit is 1048576 bytes (MAX_CONTENT_LENGTH).')


def test_body_at_the_default_limit_is_read(relay):
    body = json.dumps([email('r1c1@limits.example')]).encode()
    padded = body[:-1] + b' ' * (1024 * 1024 - len(body)) + b']'
    assert len(padded) == 1024 * 1024
    response = relay.post(PATH, data=padded)
    assert response.status_code == 200
    assert sightings(response.json()) == 1


def test_body_limit_follows_the_setting(make_relay):
    relay = make_relay(max_content_length=200)
    small = emails(1)
    assert len(json.dumps(small)) <= 200
    assert 'errors' not in relay.observe(small)
    large = emails(6)
    assert len(json.dumps(large)) > 200
    assert (
        invalid_argument(relay.post(PATH, large))
        == 'Request body too large: the limit is 200 bytes (MAX_CONTENT_LENGTH).'
    )


def test_chunked_body_over_the_limit(make_relay):
    """Without a Content-Length the body is cut off as it is read, with the same answer."""
    relay = make_relay(max_content_length=200)

    def chunks():
        yield b'['
        for n in range(50):
            yield json.dumps(email(f'r1c1-{n}@limits.example')).encode() + b','
        yield b'{"type": "email", "value": "x@limits.example"}]'

    response = requests.post(
        relay.url + PATH,
        data=chunks(),
        timeout=10,
        headers={'Authorization': f'Bearer {relay.token()}'},
    )
    assert response.request.headers.get('Transfer-Encoding') == 'chunked'
    assert (
        invalid_argument(response)
        == 'Request body too large: the limit is 200 bytes (MAX_CONTENT_LENGTH).'
    )


@pytest.mark.parametrize('padding', [0, 1, 500])
def test_chunked_body_that_would_still_parse_when_cut(make_relay, padding):
    """Cut at the limit, this body is a valid list of one observable: it must be refused,
    not looked up; exactly at the limit, it is read."""
    relay = make_relay(max_content_length=200)
    head = json.dumps([email('r1c1@limits.example')]).encode()
    body = head + b' ' * (200 - len(head) + padding)

    response = requests.post(
        relay.url + PATH,
        data=iter([body[:100], body[100:]]),
        timeout=10,
        headers={'Authorization': f'Bearer {relay.token()}'},
    )
    if padding:
        assert (
            invalid_argument(response)
            == 'Request body too large: the limit is 200 bytes (MAX_CONTENT_LENGTH).'
        )
    else:
        assert sightings(response.json()) == 1


def test_oversized_body_is_not_read_before_the_token_is_checked(make_relay):
    """No token, 5 MB announced: the answer is the auth error, at once, body unread."""
    relay = make_relay(max_content_length=1000)
    port = int(relay.url.rsplit(':', 1)[1])
    # One byte of the 5 MB is sent: an answer before the socket's 5 s timeout proves the
    # relay answered without waiting for the rest (no time is measured).
    with socket.create_connection(('127.0.0.1', port), timeout=5) as sock:
        sock.sendall(
            b'POST /observe/observables HTTP/1.1\r\nHost: relay\r\n'
            b'Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n['
        )
        answer = b''
        while b'\r\n\r\n' not in answer or not answer.rstrip().endswith(b'}'):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200')
    single_error(body, 'authorization error')


# -- observables per request ------------------------------------------------------------------


def test_more_observables_than_the_default_limit(relay, spycloud):
    message = invalid_argument(relay.post(PATH, emails(101)))
    assert message == (
        'Invalid JSON payload received. Too many observables: 101 distinct '
        'observables to look up; the limit is 100 per request (MAX_OBSERVABLES).'
    )
    assert spycloud.stats()['requests'] == 0  # refused before any lookup


def test_as_many_observables_as_the_default_limit(make_relay, spycloud):
    relay = make_relay(spycloud_rate_limit=0)  # 100 lookups without pacing: a fast test
    assert relay.observe(emails(100, 'r0c0-{n}@limits.example')) == {'data': {}}
    assert spycloud.stats()['requests'] >= 100


def test_observable_limit_follows_the_setting(make_relay, spycloud):
    relay = make_relay(max_observables=3)
    assert sightings(relay.observe(emails(3))) == 3
    assert 'the limit is 3 per request (MAX_OBSERVABLES)' in invalid_argument(
        relay.post(PATH, emails(4))
    )


def test_duplicates_count_once(make_relay):
    """The count is of distinct observables after lower-casing types and trimming values."""
    relay = make_relay(max_observables=2)
    observables = [
        email('r1c1-a@limits.example'),
        email(' r1c1-a@limits.example '),
        {'type': 'EMAIL', 'value': 'r1c1-a@limits.example'},
        {'type': ' Email ', 'value': 'r1c1-b@limits.example'},
    ] * 25
    assert sightings(relay.observe(observables)) == 2


def test_unsupported_types_do_not_count(make_relay, spycloud):
    relay = make_relay(max_observables=2)
    observables = [{'type': 'sha256', 'value': f'{n:064x}'} for n in range(500)] + emails(2)
    assert sightings(relay.observe(observables)) == 2


# -- length of a value ------------------------------------------------------------------------


def long_email(length):
    domain = '@limits.example'
    return 'r1c1-' + 'x' * (length - len(domain) - 5) + domain


def test_value_over_the_default_limit(relay, spycloud):
    value = long_email(1025)
    assert len(value) == 1025
    message = invalid_argument(relay.post(PATH, [email('r1c1@limits.example'), email(value)]))
    assert message == (
        'Invalid JSON payload received. Observable 1 (email) has a value of '
        '1025 characters; the limit is 1024 (MAX_VALUE_LENGTH).'
    )
    assert value not in message
    assert spycloud.stats()['requests'] == 0


def test_value_at_the_default_limit(relay):
    value = long_email(1024)
    assert sightings(relay.observe([email(value)])) == 1


def test_value_length_is_counted_in_characters_after_trimming(make_relay):
    relay = make_relay(max_value_length=40)
    value = 'r1c1-ü' + 'é' * (40 - 6 - len('@l.example')) + '@l.example'
    assert len(value) == 40 and len(value.encode()) > 40
    assert sightings(relay.observe([email(f'  {value}\t')])) == 1
    assert 'has a value of 41 characters; the limit is 40 (MAX_VALUE_LENGTH)' in invalid_argument(
        relay.post(PATH, [email(value + 'x')])
    )


def test_long_values_of_unsupported_types_are_dropped_not_refused(relay):
    observables = [
        {'type': 'url', 'value': 'https://x.example/' + 'a' * 5000},
        email('r1c1@limits.example'),
    ]
    assert sightings(relay.observe(observables)) == 1


# -- bodies that are not observable lists ------------------------------------------------------


@pytest.mark.parametrize(
    'data',
    [
        b'[' * 100000 + b']' * 100000,
        b'[{"type": "email", "value": ' + b'[' * 50000 + b']' * 50000 + b'}]',
        b'{"a": ' * 30000 + b'1' + b'}' * 30000,
    ],
)
def test_deeply_nested_json_is_an_invalid_argument(relay, data):
    assert invalid_argument(relay.post(PATH, data=data)).startswith(
        'Invalid JSON payload received.'
    )


def test_many_bad_items_get_a_short_message(relay):
    response = relay.post(PATH, [1] * 100000)
    message = invalid_argument(response)
    assert message.startswith('Invalid JSON payload received. {"0": ')
    assert message.endswith('(and 99990 more items with errors).')
    assert len(message) < 1000


def test_few_bad_items_are_all_named(relay):
    message = invalid_argument(relay.post(PATH, [{'type': 'email'}, {'value': 'x'}, 3]))
    errors = json.loads(message[len('Invalid JSON payload received. ') : -1])
    assert set(errors) == {'0', '1', '2'}


@pytest.mark.parametrize('kind', ['email', 'domain', 'ip', 'user'])
@pytest.mark.parametrize('value', ['.', '..', '...'])
def test_dot_values_are_refused_not_sent_as_path_steps(relay, spycloud, kind, value):
    """``breach/data/emails/..`` would collapse to ``breach/data/``: a 404 blamed on the URL."""
    body = relay.observe([{'type': kind, 'value': value}, email('r3c1@dots.example')])
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'invalid argument'
    assert repr(value) in warning['message']
    assert body['data']['sightings']['count'] == 3  # the other observable is looked up
    assert [e['endpoint'] for e in spycloud.request_log] == ['emails', 'catalog']
