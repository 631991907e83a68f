"""Domains, IPs, IPv6 and usernames, and the module settings that filter what a SOC sees."""

from datetime import date, timedelta
from urllib.parse import quote

import pytest

from simulator import data
from support import docs, single_error

KINDS = {'domain': 'domains', 'ip': 'ips', 'ipv6': 'ips', 'user': 'usernames'}


def observable(kind, value):
    return {'type': kind, 'value': value}


RECORD_ENDPOINTS = ('emails', 'domains', 'ips', 'usernames')


def records_calls(spycloud):
    return [c for c in spycloud.request_log if c['endpoint'] in RECORD_ENDPOINTS]


@pytest.mark.parametrize(
    'kind, value',
    [
        ('domain', 'r8c3.acme.example'),
        ('ip', '192.0.2.1'),
        ('ipv6', '2001:db8:1::10'),
        ('user', 'r3c2-j.doe+x/y'),
    ],
)
def test_each_type_is_looked_up_on_its_endpoint(relay, spycloud, kind, value):
    body = relay.observe([observable(kind, value)])
    expected = data.records_for(KINDS[kind], value)
    sightings = docs(body, 'sightings')
    assert len(sightings) == len(expected) > 0
    (call,) = records_calls(spycloud)
    assert call['path'].endswith(f'/breach/data/{KINDS[kind]}/{quote(value, safe="@")}')
    for sighting, record in zip(sightings, expected, strict=True):
        assert sighting['observables'] == [observable(kind, value)]
        accounts = [{'type': 'email', 'value': record['email']}]
        if record.get('username'):
            accounts.append({'type': 'user', 'value': record['username']})
        assert sighting['targets'] == [
            {'type': 'email', 'observables': accounts, 'observed_time': sighting['observed_time']}
        ]
        site = data.catalog(record['source_id'])['site']
        expected_relations = (
            []
            if site == 'n/a'
            else [
                {
                    'origin': 'SpyCloud Breach Module',
                    'relation': 'Leaked_From',
                    'source': account,
                    'related': {'type': 'domain', 'value': site},
                }
                for account in accounts
            ]
        )
        assert sighting['relations'] == expected_relations


def test_types_are_case_insensitive_and_email_keeps_its_shape(relay, spycloud):
    body = relay.observe(
        [
            {'type': 'DOMAIN', 'value': 'r2c1.case.example'},
            {'type': 'Email', 'value': 'r2c1@case.example'},
        ]
    )
    sightings = docs(body, 'sightings')
    assert len(sightings) == 4
    by_email = [s for s in sightings if s['observables'][0]['type'] == 'email']
    assert all(s['targets'][0]['observables'] == s['observables'] for s in by_email)


def test_passwords_are_masked_for_every_type(relay):
    value = 'r6c2.mask.example'
    body = relay.observe([observable('domain', value)])
    text = str(body)
    secrets = [
        r['password_plaintext']
        for r in data.records_for('domains', value)
        if r.get('password_plaintext')
    ]
    assert secrets and not any(secret in text for secret in secrets)


def test_a_big_domain_shows_the_newest_up_to_the_limit(relay, spycloud):
    body = relay.observe([observable('domain', 'r1500c10.big.example')], CTR_ENTITIES_LIMIT=50)
    assert body['data']['sightings']['count'] == 50
    dates = [s['observed_time']['start_time'] for s in docs(body, 'sightings')]
    assert dates == sorted(dates, reverse=True)
    assert any('newest 50 of 1500' in e['message'] for e in body['errors'])
    assert len(records_calls(spycloud)) == 1


def test_refused_identifier_is_a_warning_not_a_failure(relay, spycloud):
    spycloud.add_fault(
        403,
        match='domains/other.example',
        body={'message': 'User is not authorized to access this resource with an explicit deny'},
    )
    body = relay.observe(
        [observable('domain', 'other.example'), observable('domain', 'r2c1.mine.example')]
    )
    assert body['data']['sightings']['count'] == 2
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'permission denied'
    assert 'other.example' in warning['message'] and 'watchlist' in warning['message']


def test_a_bad_key_is_still_fatal_for_other_types(relay):
    body = relay.observe([observable('domain', 'r2c1.mine.example')], key='not-a-key')
    single_error(body, 'authorization error')


@pytest.mark.parametrize(
    'setting, expected',
    [(2, '2,5,20,25,26,30'), ('5', '5,20,25,26,30'), (20, '20,25,26,30'), (25, '25,26,30')],
)
def test_min_severity_is_sent_as_the_severity_filter(relay, spycloud, setting, expected):
    value = 'r12c3@filter.example'
    body = relay.observe(
        [{'type': 'email', 'value': value}], min_severity=setting, verdict_days=0
    )  # no verdict lookup beside: the one call is observe's
    (call,) = records_calls(spycloud)
    assert call['query']['severity'] == [expected]
    minimum = int(setting)
    shown = [s for s in docs(body, 'sightings')]
    assert len(shown) == len(
        [r for r in data.records_for('emails', value) if r['severity'] >= minimum]
    )
    assert 'errors' not in body


def test_lookback_days_is_sent_as_since(relay, spycloud):
    relay.observe(
        [{'type': 'email', 'value': 'r5c2@since.example'}], lookback_days=30, verdict_days=0
    )  # no verdict lookup beside: the one call is observe's
    (call,) = records_calls(spycloud)
    assert call['query']['since'] == [(date.today() - timedelta(days=30)).isoformat()]
    assert 'severity' not in call['query']


def test_filters_ride_along_on_every_page(relay, spycloud):
    spycloud.page_size = 2
    relay.observe(
        [{'type': 'email', 'value': 'r9c2@pages.example'}], min_severity=5, lookback_days=3650
    )
    calls = records_calls(spycloud)
    assert len(calls) > 1
    assert all(c['query']['severity'] == ['5,20,25,26,30'] for c in calls)
    assert all('cursor' in c['query'] for c in calls[1:])


def test_defaults_send_no_filters(relay, spycloud):
    relay.observe([{'type': 'email', 'value': 'r2c1@nofilter.example'}])
    (call,) = records_calls(spycloud)
    assert call['query'] == {}


@pytest.mark.parametrize(
    'claims, name',
    [
        ({'min_severity': 7}, 'custom_min_severity'),
        ({'min_severity': 'high'}, 'custom_min_severity'),
        ({'lookback_days': -3}, 'custom_lookback_days'),
        ({'lookback_days': 'a week'}, 'custom_lookback_days'),
        ({'show_passwords': 'perhaps'}, 'custom_show_passwords'),
    ],
)
def test_bad_settings_fall_back_with_a_warning(relay, spycloud, claims, name):
    body = relay.observe([{'type': 'email', 'value': 'r2c1@typo.example'}], **claims)
    assert body['data']['sightings']['count'] == 2
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'invalid argument'
    assert name in warning['message']
    (call,) = records_calls(spycloud)
    assert call['query'] == {}


def test_a_refused_filter_is_said_not_read_as_no_data(relay, spycloud):
    spycloud.refuse_parameter('severity', 'Unknown value 30.', match='severity=')
    body = relay.observe([{'type': 'email', 'value': 'r3c1@refused.example'}], min_severity=20)
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'invalid argument'
    assert warning['message'].startswith(
        'SpyCloud refused the severity filter for r3c1@refused.example: [BadRequest]'
    )


def test_a_plain_400_is_still_no_data(relay, spycloud):
    spycloud.refuse_parameter('email', match='emails')
    body = relay.observe([{'type': 'email', 'value': 'r3c1@plain.example'}], min_severity=20)
    assert body == {'data': {}}
