"""SpyCloudSimulator speaks the API the relay's client must cope with, over real sockets."""

import copy
import datetime
import http.client
import json
import signal
import threading
import time
import uuid

import jwt
import pytest
import requests

from simulator import (
    DEFAULT_API_KEY,
    JwksIssuer,
    SpyCloudSimulator,
    data,
    mint_token_from_state,
    tenant,
)
from support import simulator_process

TIMEOUT = 5
KEY = {'X-API-Key': DEFAULT_API_KEY}
CURSOR_NOT_FOUND = {
    'errorType': 'BadRequest',
    'errorMessage': "[BadRequest] Invalid parameter: 'cursor'. Cursor not found.",
}


@pytest.fixture
def sim():
    with SpyCloudSimulator() as server:
        yield server


@pytest.fixture
def session():
    with requests.Session() as session:
        yield session


def get(session, sim, path, headers=KEY, timeout=TIMEOUT, **params):
    return session.get(sim.url + path, params=params, headers=headers, timeout=timeout)


def drain(session, sim, path, resend=False, **params):
    """Follow cursors to the end; returns (records, hits per page, cursors)."""
    records, hits, cursors = [], [], []
    response = get(session, sim, path, **params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        records += body['results']
        hits.append(body['hits'])
        cursors.append(body['cursor'])
        if not body['cursor']:
            return records, hits, cursors
        follow = dict(params, cursor=body['cursor']) if resend else {'cursor': body['cursor']}
        response = get(session, sim, path, **follow)


# -- routes and data ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    'kind,value',
    [
        ('emails', 'r12c3@acme.example'),
        ('domains', 'r9c2.acme.example'),
        ('usernames', 'r6c6'),
        ('ips', '192.0.2.1'),
    ],
)
def test_each_breach_endpoint_returns_the_data_module_records(session, sim, kind, value):
    expected = data.records_for(kind, value)
    assert expected, 'pick an observable that has records'
    response = get(session, sim, f'breach/data/{kind}/{value}')
    assert response.status_code == 200
    assert response.headers['Content-Type'] == 'application/json'
    assert response.json() == {'cursor': '', 'hits': len(expected), 'results': expected}
    assert sim.stats()['by_endpoint'][kind] == 1


def test_path_parameters_are_url_decoded(session, sim):
    response = session.get(
        sim.url + 'breach/data/usernames/a%2Fb%20c', headers=KEY, timeout=TIMEOUT
    )
    assert response.json()['results'] == data.records_for('usernames', 'a/b c')
    response = session.get(
        sim.url + 'breach/data/emails/r3c1%40enc.example', headers=KEY, timeout=TIMEOUT
    )
    assert response.json()['hits'] == 3
    assert sim.request_log[-1]['path'].endswith('r3c1%40enc.example')


def test_observable_without_records_answers_an_empty_envelope(session, sim):
    response = get(session, sim, 'breach/data/emails/none@acme.example')
    assert response.status_code == 200
    assert response.json() == {'cursor': '', 'hits': 0, 'results': []}


def test_unknown_paths_answer_404(session, sim):
    for path in (
        'breach/data/passwords/x',
        'breach/catalog',
        'nope',
        'watchlist/a/b/verify',
        'breach/data/emails/',
    ):
        response = get(session, sim, path)
        assert response.status_code == 404
        assert response.json() == {'message': 'Not Found'}
    response = session.get(
        f'http://127.0.0.1:{sim.port}/sp-v2/breach/data/emails/a@b.c', headers=KEY, timeout=TIMEOUT
    )
    assert response.status_code == 404
    response = session.post(
        sim.url + 'breach/data/emails/a@b.c', headers=KEY, json={}, timeout=TIMEOUT
    )
    assert response.status_code == 404
    assert sim.stats()['by_endpoint']['other'] == 6


def test_the_watchlist_is_per_key_and_stateful(session, sim):
    """[ASSUME] statuses of spec §5: 404 absent, 201 created, 409 there, 204 deleted."""
    assert get(session, sim, 'watchlist/new.example').status_code == 404
    create = session.post(
        sim.url + 'watchlist/create',
        headers=KEY,
        timeout=TIMEOUT,
        json={'identifier': 'new.example', 'watchlist_type': 'domain'},
    )
    assert create.status_code == 201 and create.json()['verified'] == 'NO'
    again = session.post(
        sim.url + 'watchlist/create',
        headers=KEY,
        timeout=TIMEOUT,
        json={'identifier': 'NEW.example', 'watchlist_type': 'domain'},
    )
    assert again.status_code == 409
    assert get(session, sim, 'watchlist/new.example').json()['results'][0]['verified'] == 'NO'
    assert get(session, sim, 'watchlist/new.example/verify').json()['verified'] == 'YES'
    assert get(session, sim, 'watchlist/new.example').json()['results'][0]['verified'] == 'YES'
    assert get(session, sim, 'watchlist/admin@example.org/verify').status_code == 400
    gone = session.delete(sim.url + 'watchlist/new.example/delete', headers=KEY, timeout=TIMEOUT)
    assert gone.status_code == 204 and gone.content == b''
    assert (
        session.delete(
            sim.url + 'watchlist/new.example/delete', headers=KEY, timeout=TIMEOUT
        ).status_code
        == 404
    )
    assert 'new.example' not in sim.watchlist()
    sim.api_keys.add('other-key')
    assert (
        get(session, sim, 'watchlist/example.org', headers={'X-API-Key': 'other-key'}).status_code
        == 200
    )  # seeded for each key


@pytest.mark.parametrize(
    'body',
    [
        {'identifier': 'a@b.example', 'watchlist_type': 'domain'},
        {'identifier': 'b.example', 'watchlist_type': 'url'},
        {'identifier': '', 'watchlist_type': 'domain'},
        [1],
    ],
)
def test_a_create_with_a_bad_type_is_400(session, sim, body):
    response = session.post(sim.url + 'watchlist/create', headers=KEY, json=body, timeout=TIMEOUT)
    assert response.status_code == 400


def test_an_address_at_a_verified_domain_is_searched_at_once(session, sim):
    for identifier, verified in (('bob@example.org', 'YES'), ('bob@elsewhere.example', 'NO')):
        response = session.post(
            sim.url + 'watchlist/create',
            headers=KEY,
            timeout=TIMEOUT,
            json={'identifier': identifier, 'watchlist_type': 'email'},
        )
        assert response.json()['verified'] == verified


def test_watchlist_item(session, sim):
    response = get(session, sim, 'watchlist/example.org')
    body = response.json()
    assert response.status_code == 200 and body['hits'] == 1 and body['cursor'] == ''
    assert body['results'] == [data.watchlist_item('example.org')]
    assert body['results'][0]['status'] == 'ACTIVE'


def test_a_list_of_emails_answers_the_records_of_each_newest_first(session, sim):
    addresses = ['r5c2@one.example', 'R7C3@Two.example', 'none@three.example']
    response = get(session, sim, 'breach/data/emails/' + ','.join(addresses), severity='20,25')
    body = response.json()
    expected = [
        r for a in addresses for r in data.records_for('emails', a) if r['severity'] in (20, 25)
    ]
    expected.sort(key=lambda r: r['spycloud_publish_date'], reverse=True)
    assert body['results'] == expected and body['hits'] == len(expected)
    assert {r['email'] for r in body['results']} <= {'r5c2@one.example', 'r7c3@two.example'}
    assert len({r['email'] for r in body['results']}) == 2


@pytest.mark.parametrize(
    'mode, addresses, status, hits',
    [
        ('list', [f'r1c1@{i}.example' for i in range(10)], 200, 10),
        ('list', [f'r1c1@{i}.example' for i in range(11)], 400, None),
        ('list', ['r1c1@a.example', ' '], 400, None),
        ('literal', ['r1c1@a.example', 'r1c1@b.example'], 200, 0),
        ('refuse', ['r1c1@a.example', 'r1c1@b.example'], 400, None),
        ('refuse', ['r1c1@a.example'], 200, 1),  # one address is no list
    ],
)
def test_how_a_list_of_emails_is_read(session, sim, mode, addresses, status, hits):
    sim.email_lists = mode
    response = get(session, sim, 'breach/data/emails/' + ','.join(addresses))
    assert response.status_code == status, response.text
    if hits is None:
        assert "Invalid parameter: 'email'" in response.json()['errorMessage']
    else:
        assert response.json()['hits'] == hits


# -- filters ----------------------------------------------------------------------------------


def test_severity_filter(session, sim):
    everything = data.records_for('emails', 'r100c10@f.example')
    response = get(session, sim, 'breach/data/emails/r100c10@f.example', severity='20,25')
    body = response.json()
    assert body['results'] == [r for r in everything if r['severity'] in (20, 25)]
    assert body['hits'] == 86


def test_since_until_filters_accept_dates_and_timestamps(session, sim):
    everything = data.records_for('emails', 'r100c10@f.example')
    middle = everything[50]['spycloud_publish_date']
    expected = [r for r in everything if r['spycloud_publish_date'] >= middle]
    for since in (middle[:10], middle, middle.replace('Z', '')):
        body = get(session, sim, 'breach/data/emails/r100c10@f.example', since=since).json()
        assert body['results'] == expected and body['hits'] == len(expected)
    body = get(session, sim, 'breach/data/emails/r100c10@f.example', until=middle[:10]).json()
    assert body['results'] == [r for r in everything if r['spycloud_publish_date'] <= middle]
    body = get(
        session,
        sim,
        'breach/data/emails/r100c10@f.example',
        since=everything[60]['spycloud_publish_date'][:10],
        until=everything[40]['spycloud_publish_date'][:10],
    ).json()
    assert all(
        everything[60]['spycloud_publish_date']
        <= r['spycloud_publish_date']
        <= everything[40]['spycloud_publish_date']
        for r in body['results']
    )
    assert body['hits'] >= 21


def test_source_id_filter(session, sim):
    ids = data.catalog_ids_for('emails', 'r30c3@f.example')
    body = get(session, sim, 'breach/data/emails/r30c3@f.example', source_id=ids[1]).json()
    assert body['hits'] == 10 and {r['source_id'] for r in body['results']} == {ids[1]}
    body = get(
        session, sim, 'breach/data/emails/r30c3@f.example', source_id=f'{ids[0]},{ids[2]}'
    ).json()
    assert body['hits'] == 20


@pytest.mark.parametrize(
    'name,value',
    [
        ('severity', 'abc'),
        ('severity', '20,x'),
        ('since', 'yesterday'),
        ('until', '2024-13-01'),
        ('source_id', '1.5'),
    ],
)
def test_invalid_filter_values_answer_400(session, sim, name, value):
    response = get(session, sim, 'breach/data/emails/r3c1@f.example', **{name: value})
    assert response.status_code == 400
    body = response.json()
    assert body['errorType'] == 'BadRequest'
    assert body['errorMessage'].startswith(f"[BadRequest] Invalid parameter: '{name}'. ")


# -- paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize('resend', [False, True])
def test_paging_concatenates_to_the_unpaged_list(session, sim, resend):
    sim.page_size = 7
    records, hits, cursors = drain(
        session, sim, 'breach/data/emails/r30c5@page.example', resend=resend
    )
    assert records == data.records_for('emails', 'r30c5@page.example')
    assert hits == [30] * 5
    assert cursors[-1] == ''
    assert len(set(cursors[:-1])) == 4
    assert all(str(uuid.UUID(c)) == c for c in cursors[:-1])


def test_paging_keeps_the_filters_of_the_first_request(session, sim):
    sim.page_size = 10
    records, hits, _ = drain(session, sim, 'breach/data/emails/r100c5@page.example', severity='20')
    assert len(records) == 70 and set(hits) == {70}
    assert all(r['severity'] == 20 for r in records)


def test_default_page_size_is_1000(session, sim):
    records, hits, cursors = drain(session, sim, 'breach/data/domains/r2500c10.big.example')
    assert len(cursors) == 3 and hits == [2500] * 3 and len(records) == 2500
    assert len({r['document_id'] for r in records}) == 2500


def test_same_query_gets_a_fresh_cursor_each_time(session, sim):
    sim.page_size = 5
    first = get(session, sim, 'breach/data/emails/r20c2@c.example').json()['cursor']
    second = get(session, sim, 'breach/data/emails/r20c2@c.example').json()['cursor']
    assert first and second and first != second


@pytest.mark.parametrize('blank', ['', ' '])
def test_blank_cursor_means_first_page(session, sim, blank):
    sim.page_size = 4
    body = get(session, sim, 'breach/data/emails/r10c2@c.example', cursor=blank).json()
    assert body['results'] == data.records_for('emails', 'r10c2@c.example')[:4]
    assert body['cursor']


def test_unknown_cursor_answers_400(session, sim):
    response = get(session, sim, 'breach/data/emails/r10c2@c.example', cursor=str(uuid.uuid4()))
    assert response.status_code == 400 and response.json() == CURSOR_NOT_FOUND


def test_expired_cursor_answers_400(session, sim):
    sim.page_size = 4
    sim.cursor_ttl = 0.2
    cursor = get(session, sim, 'breach/data/emails/r10c2@c.example').json()['cursor']
    time.sleep(0.3)
    response = get(session, sim, 'breach/data/emails/r10c2@c.example', cursor=cursor)
    assert response.status_code == 400 and response.json() == CURSOR_NOT_FOUND
    sim.cursor_ttl = 120
    cursor = get(session, sim, 'breach/data/emails/r10c2@c.example').json()['cursor']
    sim.expire_cursors()
    assert get(session, sim, 'breach/data/emails/r10c2@c.example', cursor=cursor).status_code == 400


def test_cursor_is_bound_to_its_api_key(session, sim):
    sim.api_keys.add('other-key')
    sim.page_size = 4
    cursor = get(session, sim, 'breach/data/emails/r10c2@c.example').json()['cursor']
    response = get(
        session,
        sim,
        'breach/data/emails/r10c2@c.example',
        headers={'X-API-Key': 'other-key'},
        cursor=cursor,
    )
    assert response.status_code == 400 and response.json() == CURSOR_NOT_FOUND
    # A retried page (same cursor twice) still works for its owner.
    assert get(session, sim, 'breach/data/emails/r10c2@c.example', cursor=cursor).status_code == 200
    assert get(session, sim, 'breach/data/emails/r10c2@c.example', cursor=cursor).status_code == 200


# -- catalog ----------------------------------------------------------------------------------


def test_catalog_single_and_comma_list(session, sim):
    body = get(session, sim, 'breach/catalog/31361').json()
    assert body == {'cursor': '', 'hits': 1, 'results': [data.catalog(31361)]}
    body = get(session, sim, 'breach/catalog/20007,31361,20007').json()
    assert body['hits'] == 2
    assert [c['id'] for c in body['results']] == [20007, 31361]
    assert body['results'][0]['combo_list_flag'] == 'YES'


def test_missing_catalogs_are_omitted(session, sim):
    sim.missing_catalogs.add(31361)
    assert get(session, sim, 'breach/catalog/31361').json() == {
        'cursor': '',
        'hits': 0,
        'results': [],
    }
    body = get(session, sim, 'breach/catalog/31361,31362,0').json()
    assert body['hits'] == 1 and body['results'][0]['id'] == 31362


def test_non_numeric_catalog_id_answers_400(session, sim):
    response = get(session, sim, 'breach/catalog/12,abc')
    assert response.status_code == 400
    assert response.json()['errorType'] == 'BadRequest'


# -- auth, throttling, quota ---------------------------------------------------------------------


def test_missing_or_empty_key_answers_401(session, sim):
    for headers in ({}, {'X-API-Key': ''}):
        response = get(session, sim, 'watchlist/example.org', headers=headers)
        assert response.status_code == 401
        assert response.json() == {'message': 'Unauthorized'}


def test_unknown_key_answers_403_with_spycloud_error(session, sim):
    response = get(session, sim, 'watchlist/example.org', headers={'X-API-Key': 'wrong'})
    assert response.status_code == 403
    assert response.json() == {'message': 'Forbidden'}
    assert response.headers['SpyCloud-Error'] == 'Invalid API key'
    sim.api_keys.add('wrong')
    assert (
        get(session, sim, 'watchlist/example.org', headers={'X-API-Key': 'wrong'}).status_code
        == 200
    )


@pytest.mark.parametrize('name', ['X-API-Key', 'X-API-KEY', 'x-api-key', 'X-Api-Key'])
def test_key_header_name_is_case_insensitive(session, sim, name):
    response = get(session, sim, 'watchlist/example.org', headers={name: DEFAULT_API_KEY})
    assert response.status_code == 200
    assert sim.request_log[-1]['api_key'] == DEFAULT_API_KEY


def test_rate_limit_token_bucket_per_key(session, sim):
    sim.api_keys.add('second')
    sim.rate_limit = (2, 3)  # slow refill, so a loaded CI box cannot sneak in a 4th token
    sim.retry_after = 2
    statuses = [get(session, sim, 'watchlist/example.org').status_code for _ in range(3)]
    throttled = get(session, sim, 'watchlist/example.org')
    assert statuses == [200] * 3
    assert throttled.status_code == 429
    assert throttled.json() == {'message': 'Too Many Requests'}
    assert throttled.headers['x-amzn-ErrorType'] == 'TooManyRequestsException'
    assert throttled.headers['Retry-After'] == '2'
    second_key = {'X-API-Key': 'second'}
    assert get(session, sim, 'watchlist/example.org', headers=second_key).status_code == 200
    time.sleep(0.55)  # 2 rps refills one token
    assert get(session, sim, 'watchlist/example.org').status_code == 200
    sim.rate_limit = None
    assert [get(session, sim, 'watchlist/example.org').status_code for _ in range(5)] == [200] * 5


def test_monthly_quota_and_throttle_precedence(session, sim):
    sim.monthly_quota = 2
    assert [get(session, sim, 'watchlist/example.org').status_code for _ in range(2)] == [200, 200]
    over = get(session, sim, 'watchlist/example.org')
    assert over.status_code == 429
    assert over.json() == {'message': 'Limit Exceeded'}
    assert over.headers['x-amzn-ErrorType'] == 'LimitExceededException'
    assert 'Retry-After' not in over.headers
    sim.rate_limit = (0.001, 1)
    # The first spends the only token, then meets the quota.
    first = get(session, sim, 'watchlist/example.org')
    assert first.headers['x-amzn-ErrorType'] == 'LimitExceededException'
    both = get(session, sim, 'watchlist/example.org')
    assert both.headers['x-amzn-ErrorType'] == 'TooManyRequestsException'
    assert sim.stats()['quota_used'][DEFAULT_API_KEY] == 2
    sim.reset_quota()
    sim.rate_limit = None
    assert get(session, sim, 'watchlist/example.org').status_code == 200


# -- fault injection ----------------------------------------------------------------------------


def test_status_fault_with_times_body_and_headers(session, sim):
    fault = sim.add_fault(503, times=2, headers={'X-Fault': 'yes'})
    first = get(session, sim, 'watchlist/example.org')
    assert first.status_code == 503
    assert first.json() == {'message': 'Service Unavailable'}
    assert first.headers['X-Fault'] == 'yes'
    assert get(session, sim, 'watchlist/example.org').status_code == 503
    assert get(session, sim, 'watchlist/example.org').status_code == 200
    assert fault.hits == 2 and fault.exhausted
    sim.add_fault(500, body={'errorMessage': 'Internal failure'})
    assert get(session, sim, 'watchlist/example.org').json() == {'errorMessage': 'Internal failure'}
    sim.clear_faults()
    assert get(session, sim, 'watchlist/example.org').status_code == 200


def test_fault_match_and_order_and_precedence_over_auth(session, sim):
    sim.add_fault(502, match=r'/breach/catalog/')
    sim.add_fault(504, match=r'/breach/')
    assert get(session, sim, 'breach/catalog/1').status_code == 502
    assert get(session, sim, 'breach/data/emails/a@b.example').status_code == 504
    assert get(session, sim, 'watchlist/example.org').status_code == 200
    assert get(session, sim, 'breach/catalog/1', headers={}).status_code == 502
    # Matching also sees the decoded path and the query string.
    sim.clear_faults()
    handle = sim.add_fault(418, match=r'emails/bob@x\.example\?.*severity=25')
    url = sim.url + 'breach/data/emails/bob%40x.example?severity=25'
    assert session.get(url, headers=KEY, timeout=TIMEOUT).status_code == 418
    assert get(session, sim, 'breach/data/emails/bob@x.example').status_code == 200
    sim.remove_fault(handle)
    assert session.get(url, headers=KEY, timeout=TIMEOUT).status_code == 200


def test_invalid_fault_mode_is_rejected(sim):
    with pytest.raises(ValueError):
        sim.add_fault(mode='explode')


def test_reset_fault_drops_the_connection(session, sim):
    sim.add_fault(mode='reset', times=1)
    with pytest.raises(requests.ConnectionError):
        get(session, sim, 'watchlist/example.org')
    assert get(session, sim, 'watchlist/example.org').status_code == 200
    assert sim.request_log[0]['status'] is None and sim.request_log[0]['fault'] == 'reset'


def test_hang_fault_closes_without_answer_after_delay(session, sim):
    sim.add_fault(mode='hang', delay=0.3, times=1)
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        get(session, sim, 'watchlist/example.org', timeout=3)
    assert 0.25 <= time.monotonic() - started < 2.5


def test_hang_fault_outlasting_the_client_times_out_and_frees_the_handler(session, sim):
    sim.add_fault(mode='hang', delay=30, times=1)
    with pytest.raises(requests.Timeout):
        get(session, sim, 'watchlist/example.org', timeout=0.3)
    deadline = time.monotonic() + 2
    while sim.stats()['in_flight'] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.stats()['in_flight'] == 0


def test_truncated_fault_sends_invalid_json(session, sim):
    sim.add_fault(mode='truncated', times=1)
    response = get(session, sim, 'breach/data/emails/r3c1@x.example')
    assert response.status_code == 200
    assert response.headers['Content-Type'] == 'application/json'
    assert int(response.headers['Content-Length']) == len(response.content)
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_incomplete_fault_breaks_the_body_mid_way(session, sim):
    sim.add_fault(mode='incomplete', times=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(session, sim, 'breach/data/emails/r3c1@x.example')


def test_html_fault_sends_an_html_error_page(session, sim):
    sim.add_fault(mode='html', times=1)
    sim.add_fault(504, mode='html', times=1)
    first = get(session, sim, 'watchlist/example.org')
    second = get(session, sim, 'watchlist/example.org')
    assert first.status_code == 502 and second.status_code == 504
    assert first.headers['Content-Type'] == 'text/html'
    assert '<html>' in first.text and '504 Gateway Timeout' in second.text


def test_fault_delay_postpones_the_answer(session, sim):
    sim.add_fault(500, delay=0.25, times=1)
    started = time.monotonic()
    assert get(session, sim, 'watchlist/example.org').status_code == 500
    assert time.monotonic() - started >= 0.25


def test_fault_helpers(session, sim):
    sim.retry_after = 3
    sim.throttle()
    throttled = get(session, sim, 'watchlist/example.org')
    assert throttled.status_code == 429
    assert throttled.headers['x-amzn-ErrorType'] == 'TooManyRequestsException'
    assert throttled.headers['Retry-After'] == '3'
    assert get(session, sim, 'watchlist/example.org').status_code == 200  # times=1 by default
    quota = sim.quota_exhausted()
    for _ in range(2):
        over = get(session, sim, 'watchlist/example.org')
        assert over.status_code == 429 and over.json() == {'message': 'Limit Exceeded'}
        assert over.headers['x-amzn-ErrorType'] == 'LimitExceededException'
    sim.remove_fault(quota)
    sim.forbidden_ip(times=1)
    forbidden = get(session, sim, 'watchlist/example.org')
    assert forbidden.status_code == 403 and forbidden.json() == {'message': 'Forbidden'}
    assert forbidden.headers['SpyCloud-Error'].startswith('Invalid IP')
    assert get(session, sim, 'watchlist/example.org').status_code == 200


# -- timing, concurrency, observability -----------------------------------------------------------


def test_latency_delays_every_answer(session, sim):
    sim.latency = 0.2
    started = time.monotonic()
    assert get(session, sim, 'watchlist/example.org').status_code == 200
    assert time.monotonic() - started >= 0.2


def test_max_in_flight_counts_concurrent_requests(sim):
    sim.latency = 0.3
    statuses = []

    def call():
        statuses.append(
            requests.get(
                sim.url + 'watchlist/example.org', headers=KEY, timeout=TIMEOUT
            ).status_code
        )

    threads = [threading.Thread(target=call) for _ in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    elapsed = time.monotonic() - started
    assert statuses == [200] * 6
    assert sim.stats()['max_in_flight'] == 6
    assert sim.stats()['in_flight'] == 0
    assert elapsed < 1.5  # served in parallel, not 6 x 0.3 s
    sim.reset_stats()
    assert sim.stats()['max_in_flight'] == 0


def test_stop_is_prompt_while_a_handler_sleeps():
    server = SpyCloudSimulator(latency=30).start()
    errors = []

    def call():
        try:
            requests.get(server.url + 'watchlist/example.org', headers=KEY, timeout=TIMEOUT)
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.2)
    assert server.stats()['in_flight'] == 1
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    thread.join(TIMEOUT)
    assert errors and isinstance(errors[0], requests.ConnectionError)


def test_connections_are_kept_alive(sim):
    conn = http.client.HTTPConnection('127.0.0.1', sim.port, timeout=TIMEOUT)
    try:
        sockets = []
        for path in ('watchlist/example.org', 'breach/catalog/1', 'nope'):
            conn.request('GET', '/enterprise-v2/' + path, headers=KEY)
            response = conn.getresponse()
            body = response.read()
            assert int(response.getheader('Content-Length')) == len(body)
            assert not response.will_close
            sockets.append(conn.sock)
        assert sockets[0] is sockets[1] is sockets[2]
    finally:
        conn.close()


def test_request_log_and_stats(session, sim):
    get(session, sim, 'breach/data/emails/r3c1@log.example', severity='20,25')
    get(session, sim, 'breach/catalog/5', headers={})
    get(session, sim, 'watchlist/example.org')
    get(session, sim, 'elsewhere')
    log = sim.request_log
    assert [e['endpoint'] for e in log] == ['emails', 'catalog', 'watchlist', 'other']
    assert [e['status'] for e in log] == [200, 401, 200, 404]
    assert log[0]['method'] == 'GET'
    assert log[0]['path'] == '/enterprise-v2/breach/data/emails/r3c1@log.example'
    assert log[0]['query'] == {'severity': ['20,25']}
    assert log[0]['api_key'] == DEFAULT_API_KEY and log[1]['api_key'] is None
    assert all(a['time'] <= b['time'] for a, b in zip(log, log[1:], strict=False))
    stats = sim.stats()
    assert stats['requests'] == 4
    assert stats['by_endpoint'] == {
        'emails': 1,
        'domains': 0,
        'ips': 0,
        'usernames': 0,
        'watchlist-records': 0,
        'catalog': 1,
        'watchlist': 1,
        'watchlist-create': 0,
        'watchlist-delete': 0,
        'watchlist-verify': 0,
        'compass-device-records': 0,
        'compass-devices': 0,
        'other': 1,
    }
    sim.reset_stats()
    assert sim.request_log == [] and sim.stats()['requests'] == 0


def test_https_with_a_ca_issued_certificate():
    with JwksIssuer() as issuer, SpyCloudSimulator(tls=issuer.server_cert_paths) as server:
        assert server.url.startswith('https://127.0.0.1:')
        response = requests.get(
            server.url + 'breach/data/emails/r2c1@tls.example',
            headers=KEY,
            verify=issuer.ca_pem_path,
            timeout=TIMEOUT,
        )
        assert response.status_code == 200 and response.json()['hits'] == 2
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url + 'watchlist/example.org', headers=KEY, timeout=TIMEOUT)


# -- command line -------------------------------------------------------------------------------


def test_command_line_runs_until_sigterm(tmp_path):
    with simulator_process('--page-size', '5', '--state-dir', str(tmp_path)) as (proc, info):
        assert set(info) == {'spycloud_url', 'jwks_host', 'ca_pem_path', 'api_key', 'state_dir'}
        assert info['api_key'] == DEFAULT_API_KEY
        assert info['state_dir'] == str(tmp_path)
        response = requests.get(
            info['spycloud_url'] + 'breach/data/emails/r7c1@cli.example',
            headers={'X-API-Key': info['api_key']},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200
        assert len(response.json()['results']) == 5 and response.json()['hits'] == 7
        jwks = requests.get(
            f'https://{info["jwks_host"]}/.well-known/jwks',
            verify=info['ca_pem_path'],
            timeout=TIMEOUT,
        ).json()
        token = mint_token_from_state(info['state_dir'], 'http://relay.local')
        claims = jwt.decode(
            token,
            jwt.PyJWK(jwks['keys'][0]).key,
            algorithms=['RS256'],
            audience='http://relay.local',
        )
        assert claims['jwks_host'] == info['jwks_host']
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_reset_returns_every_knob_to_its_start(sim):
    """The session's simulator is reset after each test: a knob one test turns (the gateway's
    day limit, the cursor TTL, a fault) never reaches the next."""
    fresh = copy.deepcopy({n: v for n, v in vars(sim).items() if not n.startswith('_')})
    sim.watchlist_max_days, sim.watchlist_timeout_s, sim.cursor_ttl = 1, 5.0, 0.1
    sim.page_size, sim.latency, sim.email_lists, sim.gzip = 3, 0.5, 'refuse', True
    sim.rate_limit, sim.retry_after, sim.monthly_quota = (1, 1), 2, 5
    sim.watchlist_records, sim.catalog_overrides = [], {1: {'title': 'x'}}
    sim.missing_catalogs.add(5)
    sim.add_fault(500)
    sim.reset()
    assert {name: value for name, value in vars(sim).items() if not name.startswith('_')} == fresh
    assert sim.stats()['requests'] == 0 and not sim._faults


def test_a_watchlist_window_longer_than_the_gateways_limit_answers_504_at_once(session, sim):
    """``watchlist_max_days``: SpyCloud's gateway giving up on a long window (with the default
    ``watchlist_timeout_s`` of 0, at once); a window within it is answered, since and until
    honoured as without the knob."""
    sim.watchlist_max_days = 10
    today = datetime.datetime.now(datetime.UTC).date()
    first = today - datetime.timedelta(days=30)

    def window(days):
        until = first + datetime.timedelta(days=days)
        return get(session, sim, 'breach/data/watchlist', since=str(first), until=str(until))

    long_one = window(11)
    assert long_one.status_code == 504 and long_one.json() == {
        'message': 'Endpoint request timed out'
    }
    within = window(10)
    assert within.status_code == 200
    published = {r['spycloud_publish_date'][:10] for r in within.json()['results']}
    assert published and min(published) >= str(first)
    assert max(published) <= str(first + datetime.timedelta(days=10))
    sim.reset()
    assert sim.watchlist_max_days is None and window(11).status_code == 200


# -- modification dates, publish and modify (the sync's pull) -----------------------------------


def watchlist_drain(session, sim, **params):
    return drain(session, sim, 'breach/data/watchlist', **params)[0]


def test_the_watchlist_filters_on_modification_dates_and_severities(session, sim):
    """``since_modification_date``/``until_modification_date`` (full ISO or date-only, a date-only
    until taking in its whole day) select on ``record_modification_date``; ``severity`` too."""
    today = datetime.datetime.now(datetime.UTC).date()
    everything = [r for day in tenant.records_by_day(today).values() for r in day]
    since, until = f'{today - datetime.timedelta(days=9)}T07:00:00Z', f'{today}T00:00:00Z'
    found = watchlist_drain(
        session, sim, since_modification_date=since, until_modification_date=until, severity='20,25'
    )
    expected = [
        r
        for r in everything
        if since <= r['record_modification_date'] <= until and r['severity'] in (20, 25)
    ]
    assert found and sorted(r['document_id'] for r in found) == sorted(
        r['document_id'] for r in expected
    )
    assert any(r['spycloud_publish_date'] < since for r in found)  # modified later: read
    day = str(today - datetime.timedelta(days=3))
    by_day = watchlist_drain(session, sim, since_modification_date=day, until_modification_date=day)
    assert sorted(r['document_id'] for r in by_day) == sorted(
        r['document_id'] for r in everything if r['record_modification_date'][:10] == day
    )


def test_published_and_modified_records_join_the_answer_until_reset(session, sim):
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    stamp = before.strftime('%Y-%m-%dT%H:%M:%SZ')
    (new,) = sim.publish([{'source_id': 70_001, 'severity': 25, 'email': 'new@example.org'}])
    assert new['spycloud_publish_date'] >= stamp and new['record_modification_date'] >= stamp
    today = before.date()
    old = tenant.records_by_day(today)[today - datetime.timedelta(days=40)][0]
    changed = sim.modify(old['document_id'], password_plaintext='cracked')
    assert changed['record_modification_date'] >= stamp
    found = watchlist_drain(session, sim, since_modification_date=stamp)
    assert [r['document_id'] for r in found] == [new['document_id'], old['document_id']]
    assert found[1]['password_plaintext'] == 'cracked'
    assert found[1]['spycloud_publish_date'] == old['spycloud_publish_date']
    by_publish = watchlist_drain(session, sim, since=old['spycloud_publish_date'][:10])
    assert [r for r in by_publish if r['document_id'] == old['document_id']] == [found[1]]
    with pytest.raises(KeyError):
        sim.modify('no-such-record')
    sim.reset()
    assert watchlist_drain(session, sim, since_modification_date=stamp) == []


def test_a_modification_window_longer_than_the_gateways_limit_answers_504(session, sim):
    sim.watchlist_max_days = 2
    now = datetime.datetime.now(datetime.UTC)

    def window(days):
        since = (now - datetime.timedelta(days=days)).strftime('%Y-%m-%dT%H:%M:%SZ')
        return get(session, sim, 'breach/data/watchlist', since_modification_date=since)

    assert window(3.5).status_code == 504
    assert window(1.75).status_code == 200
