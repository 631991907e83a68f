"""Watchlist response actions over HTTP: the offers for each state, each trigger's SpyCloud
call, idempotence, every bad input, SpyCloud's failures, and the module's switches."""

import json
import logging

import pytest

from simulator import data
from spycloud_relay.logs import JsonFormatter
from support import email

ADD, VERIFY, REMOVE = (
    'spycloud-watchlist-add',
    'spycloud-watchlist-verify',
    'spycloud-watchlist-remove',
)


def offers(relay, observables, **claims):
    response = relay.post('/respond/observables', observables, **claims)
    assert response.status_code == 200, response.text
    return response.json()


def offered(body):
    return {(a['id'], a['query-params']['observable_value']) for a in body['data']}


def trigger(relay, payload, **claims):
    response = relay.post('/respond/trigger', payload, **claims)
    assert response.status_code == 200, response.text
    return response.json()


def watchlist_calls(spycloud):
    return [
        (c['method'], c['endpoint'])
        for c in spycloud.request_log
        if c['endpoint'].startswith('watchlist')
    ]


def test_the_offer_follows_the_state(relay, spycloud):
    body = offers(
        relay,
        [
            email('new.person@example.org'),
            email('admin@example.org'),
            {'type': 'domain', 'value': 'pending.example'},
            {'type': 'domain', 'value': 'example.org'},
            {'type': 'ip', 'value': '198.51.100.7'},
            {'type': 'url', 'value': 'https://example.org/'},
        ],
    )
    assert 'errors' not in body
    assert offered(body) == {
        (ADD, 'new.person@example.org'),
        (VERIFY, 'pending.example'),
        (ADD, '198.51.100.7'),
    }
    assert watchlist_calls(spycloud) == [('GET', 'watchlist')] * 5  # the url is dropped
    assert spycloud.stats()['max_in_flight'] >= 1


def test_removal_is_offered_only_when_the_module_allows_it(relay):
    observables = [email('admin@example.org'), {'type': 'domain', 'value': 'pending.example'}]
    assert offered(offers(relay, observables)) == {(VERIFY, 'pending.example')}
    assert offered(offers(relay, observables, watchlist_removal=True)) == {
        (REMOVE, 'admin@example.org'),
        (VERIFY, 'pending.example'),
        (REMOVE, 'pending.example'),
    }


def test_an_action_says_what_spycloud_will_do(relay):
    (action,) = offers(relay, [email('someone@personal.example')])['data']
    assert action['title'] == 'Add someone@personal.example to the SpyCloud watchlist'
    assert 'verification mail' in action['description']
    assert action['categories'] == ['SpyCloud', 'Watchlist']
    assert action['query-params'] == {
        'observable_type': 'email',
        'observable_value': 'someone@personal.example',
        'watchlist_type': 'email',
    }


@pytest.mark.parametrize(
    'value, kind',
    [
        ('mail.new.example', 'subdomain'),
        ('new.example', 'domain'),
        ('shop.new.co.uk', 'subdomain'),
        ('new.co.uk', 'domain'),
        # LDH and punycode names are identifiers too
        ('xn--bcher-kva.example', 'domain'),
        ('a-b.c-d.example', 'subdomain'),
        ('x.y.co.uk', 'subdomain'),
    ],
)
def test_domains_and_subdomains(relay, value, kind):
    (action,) = offers(relay, [{'type': 'domain', 'value': value}])['data']
    assert action['query-params']['watchlist_type'] == kind


def test_actions_off_means_no_offer_and_no_call(relay, spycloud):
    body = offers(relay, [email('new.person@example.org')], watchlist_actions=False)
    assert body == {'data': []}
    assert spycloud.stats()['requests'] == 0


def test_values_the_watchlist_cannot_take_are_warned_not_sent(relay, spycloud):
    body = offers(
        relay,
        [
            {'type': 'ip', 'value': 'not-an-ip'},
            {'type': 'domain', 'value': '..'},
            email('x@new.example'),
        ],
    )
    assert offered(body) == {(ADD, 'x@new.example')}
    assert [e['code'] for e in body['errors']] == ['invalid argument'] * 2
    assert len(watchlist_calls(spycloud)) == 1


def test_add_then_the_offer_flips_then_remove(relay, spycloud):
    target = {'type': 'domain', 'value': 'acquired.example'}
    (add,) = offers(relay, [target])['data']
    assert trigger(relay, {'action-id': add['id'], **add['query-params']}) == {
        'data': {'status': 'success'}
    }
    assert spycloud.watchlist()['acquired.example']['verified'] == 'NO'
    (verify,) = offers(relay, [target])['data']
    assert verify['id'] == VERIFY
    assert trigger(relay, {'action-id': VERIFY, **verify['query-params']}) == {
        'data': {'status': 'success'}
    }
    assert offers(relay, [target])['data'] == []  # on it, verified, removal off
    (remove,) = offers(relay, [target], watchlist_removal=True)['data']
    assert trigger(
        relay, {'action-id': REMOVE, **remove['query-params']}, watchlist_removal=True
    ) == {'data': {'status': 'success'}}
    assert 'acquired.example' not in spycloud.watchlist()
    assert ('POST', 'watchlist-create') in watchlist_calls(spycloud)
    assert ('DELETE', 'watchlist-delete') in watchlist_calls(spycloud)
    assert ('GET', 'watchlist-verify') in watchlist_calls(spycloud)


def test_each_trigger_sends_the_documented_call(relay, spycloud):
    trigger(
        relay,
        {
            'action-id': ADD,
            'observable_type': 'email',
            'observable_value': 'New.Hire@Example.org',
            'watchlist_type': 'email',
        },
    )
    (create,) = [c for c in spycloud.request_log if c['endpoint'] == 'watchlist-create']
    assert create['method'] == 'POST' and create['path'].endswith('/watchlist/create')
    assert spycloud.watchlist()['new.hire@example.org']['verified'] == 'YES'  # a verified domain
    trigger(
        relay,
        {
            'action-id': REMOVE,
            'observable_type': 'email',
            'observable_value': 'new.hire@example.org',
            'watchlist_type': 'email',
        },
        watchlist_removal=True,
    )
    (delete,) = [c for c in spycloud.request_log if c['endpoint'] == 'watchlist-delete']
    assert delete['path'].endswith('/watchlist/new.hire@example.org/delete')


@pytest.mark.parametrize(
    'action, value, kind, claims',
    [
        (ADD, 'admin@example.org', 'email', {}),  # already there: 409
        (REMOVE, 'gone@example.org', 'email', {'watchlist_removal': True}),  # already gone: 404
    ],
)
def test_writes_are_idempotent(relay, spycloud, action, value, kind, claims):
    payload = {
        'action-id': action,
        'observable_type': 'email',
        'observable_value': value,
        'watchlist_type': kind,
    }
    assert trigger(relay, payload, **claims) == {'data': {'status': 'success'}}
    assert trigger(relay, payload, **claims) == {'data': {'status': 'success'}}


GOOD = {
    'action-id': ADD,
    'observable_type': 'domain',
    'observable_value': 'new.example',
    'watchlist_type': 'domain',
}


@pytest.mark.parametrize(
    'payload, claims, fragment',
    [
        ({**GOOD, 'action-id': 'spycloud-watchlist-explode'}, {}, 'Unknown action-id'),
        ({k: v for k, v in GOOD.items() if k != 'action-id'}, {}, 'Unknown action-id'),
        ({k: v for k, v in GOOD.items() if k != 'observable_value'}, {}, 'needs observable_value'),
        ({**GOOD, 'watchlist_type': '  '}, {}, 'needs watchlist_type'),
        ({**GOOD, 'observable_type': 'url'}, {}, 'takes email or domain or ip observables'),
        (
            {
                **GOOD,
                'action-id': VERIFY,
                'observable_type': 'email',
                'observable_value': 'a@new.example',
                'watchlist_type': 'email',
            },
            {},
            'takes domain',
        ),
        ({**GOOD, 'observable_value': 'x' * 1020 + '.example'}, {}, 'MAX_VALUE_LENGTH'),
        ({**GOOD, 'watchlist_type': 'email'}, {}, 'does not match'),
        ({**GOOD, 'observable_value': 'mail.new.example'}, {}, '(a subdomain)'),
        (
            {**GOOD, 'observable_type': 'ip', 'observable_value': '::1', 'watchlist_type': 'ip'},
            {},
            'does not match',
        ),
        ({**GOOD, 'action-id': REMOVE}, {}, 'custom_watchlist_removal'),
        ({**GOOD}, {'watchlist_actions': False}, 'custom_watchlist_actions'),
        ([GOOD], {}, 'must be a JSON object'),
        ('not json', {}, 'must be a JSON object'),
    ],
)
def test_bad_input_is_refused_and_nothing_is_sent(relay, spycloud, payload, claims, fragment):
    data_ = payload if isinstance(payload, str) else json.dumps(payload)
    response = relay.post('/respond/trigger', data=data_, **claims)
    body = response.json()
    assert response.status_code == 200
    assert body['data'] == {'status': 'failure'}
    (error,) = body['errors']
    assert error['code'] == 'invalid argument' and fragment in error['message'], error
    assert spycloud.stats()['requests'] == 0


@pytest.mark.parametrize('value', [[ADD], {'action-id': ADD}, 7, None], ids=str)
@pytest.mark.parametrize('field', list(GOOD))
def test_a_field_that_is_not_a_string_is_an_invalid_argument(relay, spycloud, field, value):
    response = relay.post('/respond/trigger', {**GOOD, field: value})
    body = response.json()
    assert response.status_code == 200 and body['data'] == {'status': 'failure'}, body
    (error,) = body['errors']
    assert error['code'] == 'invalid argument', error
    assert f'"{field}": ["Must be a string' in error['message'], error
    assert spycloud.stats()['requests'] == 0


def test_a_type_spycloud_refuses_is_an_invalid_argument(relay, spycloud):
    spycloud.add_fault(400, match='create', body={'errorMessage': "Invalid 'watchlist_type'"})
    body = trigger(relay, GOOD)
    assert body['data'] == {'status': 'failure'}
    assert body['errors'][0]['code'] == 'invalid argument'


@pytest.mark.parametrize(
    'fault, code',
    [
        (dict(status=401, body={'message': 'Unauthorized'}), 'authorization error'),
        (dict(status=403, headers={'SpyCloud-Error': 'Invalid IP 1.2.3.4'}), 'authorization error'),
        (
            dict(status=429, headers={'x-amzn-ErrorType': 'TooManyRequestsException'}),
            'too many requests',
        ),
        (dict(status=500), 'internal error'),
        (dict(status=503), 'unknown'),
        (dict(mode='hang', delay=5), 'unknown'),
    ],
)
@pytest.mark.parametrize('where', ['offer', 'trigger'])
def test_spycloud_failures(make_relay, spycloud, fault, code, where):
    relay = make_relay(lookup_deadline_s=1.5, read_timeout_s=1.0)
    spycloud.add_fault(match='watchlist', **fault)
    if where == 'offer':
        body = offers(relay, [email('new@new.example')])
        assert not body.get('data')  # no action is offered on a failed look
    else:
        body = trigger(relay, GOOD)
        assert body['data'] == {'status': 'failure'}
    (error,) = body['errors']
    if fault.get('mode') == 'hang':  # a read timeout, or the deadline, whichever comes first
        assert error['code'] in ('unknown', 'deadline exceeded')
    else:
        assert (error['type'], error['code']) == ('fatal', code)


@pytest.mark.parametrize(
    'fault',
    [dict(mode='reset'), dict(status=503), dict(status=500), dict(mode='truncated', status=201)],
)
def test_a_write_that_may_have_landed_is_not_sent_twice(relay, spycloud, fault):
    spycloud.add_fault(match='create', **fault)
    body = trigger(relay, GOOD)
    creates = [c for c in spycloud.request_log if c['endpoint'] == 'watchlist-create']
    assert len(creates) == 1
    if fault.get('status') != 201:
        assert body['data'] == {'status': 'failure'}


@pytest.mark.parametrize('status', [413, 503])
@pytest.mark.parametrize('endpoint', ['create', 'delete'])
def test_a_write_asked_to_come_back_later_is_not_sent_again(relay, spycloud, status, endpoint):
    """urllib3 retries any allowed method on a 413 or 503 with Retry-After, whatever the
    status list says; a write answered so may have landed, and is sent once."""
    spycloud.add_fault(status, match=endpoint, headers={'Retry-After': '0.01'})
    payload = dict(GOOD)
    if endpoint == 'delete':
        payload.update({'action-id': REMOVE, 'observable_value': 'example.org'})
    body = trigger(relay, payload, watchlist_removal=True)
    sent = [c for c in spycloud.request_log if c['endpoint'] == f'watchlist-{endpoint}']
    assert len(sent) == 1 and body['data'] == {'status': 'failure'}


def test_a_throttled_write_is_retried(relay, spycloud):
    spycloud.throttle(times=1, match='create')
    assert trigger(relay, GOOD) == {'data': {'status': 'success'}}
    creates = [c for c in spycloud.request_log if c['endpoint'] == 'watchlist-create']
    assert len(creates) == 2 and 'new.example' in spycloud.watchlist()


def test_every_trigger_writes_one_masked_log_line(relay, caplog):
    caplog.set_level(logging.INFO, logger='relay.respond')
    trigger(
        relay,
        {
            'action-id': ADD,
            'observable_type': 'email',
            'observable_value': 'jane.roe@example.org',
            'watchlist_type': 'email',
        },
        headers={'X-Request-Id': 'act-1'},
    )
    trigger(relay, {**GOOD, 'action-id': REMOVE})
    first, second = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == 'relay.respond'
    ]
    assert first['action'] == ADD and first['outcome'] == 'success'
    assert first['identifier'] == 'j***@example.org' and first['request_id'] == 'act-1'
    assert first['observable_type'] == 'email'
    assert second['outcome'] == 'failure' and second['detail'] == 'invalid argument'
    assert 'jane.roe' not in json.dumps(first)


def test_the_seeded_watchlist_is_the_demo_data(spycloud):
    assert set(spycloud.watchlist()) == {name for name, _ in data.SEED_WATCHLIST}


# Identifiers that are no domain, e-mail address or IPv4 address, whatever their type claims.
NOT_IDENTIFIERS = [
    ('domain', 'x.com:8080'),
    ('domain', 'under_score.example'),
    ('domain', 'two words.example'),
    ('domain', '../etc.example'),
    ('domain', 'new.example/..'),
    ('domain', 'new.example\r\nX-Injected: 1'),
    ('domain', '-dash.example'),
    ('domain', 'new.example.'),
    ('domain', 'b\u00fccher.example'),
    ('domain', 'new.123'),
    ('email', 'a b@new.example'),
    ('email', 'a@x.com:8080'),
    ('email', '../x@new.example'),
    ('email', 'a,b@new.example'),
    ('email', 'a@under_score.example'),
    ('email', '\u212aate@new.example'),
    ('ip', '198.51.100.7:80'),
    ('ip', '198.51.100.7\r\n'),
]


def test_what_is_no_identifier_gets_no_offer_and_no_call(relay, spycloud):
    """(Every route trims white space around an observable's value, so a value that is an
    identifier once trimmed is offered, as that identifier; a trigger takes it only exact.)"""
    observables = [{'type': k, 'value': v} for k, v in NOT_IDENTIFIERS if v == v.strip()]
    body = offers(relay, observables)
    assert body['data'] == []
    assert {e['code'] for e in body['errors']} == {'invalid argument'}
    assert watchlist_calls(spycloud) == []


@pytest.mark.parametrize('kind, value', NOT_IDENTIFIERS)
def test_a_trigger_of_what_is_no_identifier_is_refused_unsent(relay, spycloud, kind, value):
    watchlist_type = {'domain': 'domain', 'email': 'email', 'ip': 'ip'}[kind]
    payload = {
        'action-id': ADD,
        'observable_type': kind,
        'observable_value': value,
        'watchlist_type': watchlist_type,
    }
    body = trigger(relay, payload)
    assert body['data'] == {'status': 'failure'}
    (error,) = body['errors']
    assert error['code'] == 'invalid argument', error
    assert spycloud.stats()['requests'] == 0


def test_a_wrong_api_url_is_no_removal(make_relay, spycloud):
    """A 404 that is not SpyCloud's own ("not on the watchlist") is an error naming the URL:
    with SPYCLOUD_API_URL at a wrong path, nothing was removed, and nothing is offered."""
    relay = make_relay(spycloud_api_url=spycloud.url.replace('/enterprise-v2/', '/enterprise-v9/'))
    payload = {
        'action-id': REMOVE,
        'observable_type': 'email',
        'observable_value': 'admin@example.org',
        'watchlist_type': 'email',
    }
    body = trigger(relay, payload, watchlist_removal=True)
    assert body['data'] == {'status': 'failure'}
    (error,) = body['errors']
    assert error['code'] == 'not found' and 'SPYCLOUD_API_URL' in error['message'], error
    assert 'admin@example.org' in spycloud.watchlist()
    body = offers(relay, [email('new.person@example.org')])
    assert not body.get('data')
    (error,) = body['errors']
    assert 'SPYCLOUD_API_URL' in error['message'], error


@pytest.mark.parametrize(
    'fault',
    [
        dict(mode='html', status=404),
        dict(status=404, body={'message': 'Missing Authentication Token'}),
        dict(status=404, body={'message': 'Not Found'}),
        dict(mode='raw', status=404, body=b''),
    ],
)
@pytest.mark.parametrize('action', [REMOVE, VERIFY])
def test_a_404_not_in_spycloud_words_is_an_error(relay, spycloud, fault, action):
    spycloud.add_fault(match='watchlist', **fault)
    payload = {
        'action-id': action,
        'observable_type': 'domain',
        'observable_value': 'pending.example',
        'watchlist_type': 'domain',
    }
    body = trigger(relay, payload, watchlist_removal=True)
    assert body['data'] == {'status': 'failure'}
    (error,) = body['errors']
    assert 'SPYCLOUD_API_URL' in error['message'], error
    assert 'pending.example' in spycloud.watchlist()
