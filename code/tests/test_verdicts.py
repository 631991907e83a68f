"""Verdicts: POST /deliberate/observables, and the judgements observe returns beside sightings.

Addresses of the form ``v{D}s{S}`` hold one record published D days before today with
severity S (see simulator/data.py), so each side of the window is reachable whatever the date.
"""

import re
from datetime import UTC, datetime, timedelta

import pytest

from simulator import data
from support import BUNDLE, docs, email, settled_today, verdict_values

TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def today():
    """Each test's own today, never within a minute of midnight (not the day the module was
    imported: a suite that runs across midnight would expect yesterday's dates)."""
    global TODAY
    TODAY = settled_today()
    return TODAY


def day(ago):
    return (TODAY - timedelta(days=ago)).isoformat()


def records_calls(spycloud):
    return [c for c in spycloud.request_log if c['endpoint'] in ('emails', 'usernames')]


@pytest.mark.parametrize(
    'value, suspicious',
    [
        ('v10s20@verdict.example', True),  # a plaintext credential ten days ago
        ('v90s20@verdict.example', True),  # just inside: the window starts 90 days ago
        ('v91s20@verdict.example', False),  # just outside
        ('v10s5@verdict.example', False),  # below the minimum severity
        ('v10s25@verdict.example', True),  # infostealer
        ('v10s30@verdict.example', True),  # stolen session cookies
        ('v200s25_v300s20@verdict.example', False),
        ('none@verdict.example', False),
    ],
)
def test_the_rule(relay, value, suspicious):
    body = relay.deliberate([email(value)])
    assert verdict_values(body) == ({value} if suspicious else set())
    if not suspicious:
        assert body == {'data': {}}


def test_a_verdict_lasts_until_the_newest_exposure_ages_out(relay):
    body = relay.deliberate([email('v10s20_v40s25@window.example')])
    (verdict,) = docs(body, 'verdicts')
    assert verdict == {
        'type': 'verdict',
        'disposition': 3,
        'disposition_name': 'Suspicious',
        'observable': {'type': 'email', 'value': 'v10s20_v40s25@window.example'},
        'valid_time': {
            'start_time': f'{day(10)}T00:00:00.000Z',
            'end_time': f'{day(10 - 90)}T00:00:00.000Z',
        },
    }


@pytest.mark.parametrize(
    'minimum, value, suspicious',
    [
        ('25', 'v10s20@min.example', False),
        ('25', 'v10s25@min.example', True),
        ('30', 'v10s25@min.example', False),
        ('30', 'v10s30@min.example', True),
        ('20', 'v10s20@min.example', True),
    ],
)
def test_the_minimum_severity_field(relay, spycloud, minimum, value, suspicious):
    body = relay.deliberate([email(value)], verdict_min_severity=minimum)
    assert verdict_values(body) == ({value} if suspicious else set())
    (call,) = records_calls(spycloud)
    assert call['query']['severity'] == [data_severities(int(minimum))]


def data_severities(minimum):
    return ','.join(str(s) for s in (2, 5, 20, 25, 26, 30) if s >= minimum)


def test_the_window_field(relay, spycloud):
    assert verdict_values(relay.deliberate([email('v20s20@days.example')], verdict_days=30)) == {
        'v20s20@days.example'
    }
    assert relay.deliberate([email('v40s20@days.example')], verdict_days=30) == {'data': {}}
    assert [c['query']['since'] for c in records_calls(spycloud)] == [[day(30)], [day(30)]]


def test_zero_days_turns_verdicts_off_without_a_call(relay, spycloud):
    assert relay.deliberate([email('v10s25@off.example')], verdict_days=0) == {'data': {}}
    body = relay.observe([email('v10s25@off.example')], verdict_days=0)
    assert 'judgements' not in body['data'] and 'verdicts' not in body['data']
    assert len(records_calls(spycloud)) == 1  # observe's own records call only


@pytest.mark.parametrize(
    'claims, warned',
    [
        ({'verdict_min_severity': '7'}, 'custom_verdict_min_severity'),
        ({'verdict_days': 'soon'}, 'custom_verdict_days'),
        ({'verdict_days': '-3'}, 'custom_verdict_days'),
    ],
)
def test_a_bad_field_falls_back_with_a_warning(relay, claims, warned):
    body = relay.deliberate([email('v10s20@bad.example')], **claims)
    assert verdict_values(body) == {'v10s20@bad.example'}  # the defaults: 20 and 90 days
    (warning,) = body['errors']
    assert warning['code'] == 'invalid argument' and warned in warning['message']


def test_only_accounts_get_verdicts(relay, spycloud):
    body = relay.deliberate(
        [
            {'type': 'domain', 'value': 'v10s20.example'},
            {'type': 'ip', 'value': '192.0.2.1'},
            {'type': 'url', 'value': 'https://example.org/'},
        ],
    )
    assert body == {'data': {}}
    assert spycloud.stats()['requests'] == 0


def test_usernames_get_verdicts(relay, spycloud):
    body = relay.deliberate([{'type': 'user', 'value': 'v5s25'}])
    assert verdict_values(body) == {'v5s25'}
    assert [c['endpoint'] for c in spycloud.request_log] == ['usernames']


def test_one_filtered_call_per_ten_addresses_and_no_catalogs(relay, spycloud):
    values = [f'v{i}s{20 if i % 2 else 5}@many.example' for i in range(1, 21)]
    spycloud.latency = 0.05  # long enough for the calls to overlap
    body = relay.deliberate([email(v) for v in values])
    assert verdict_values(body) == {v for v in values if 's20@' in v}
    calls = spycloud.request_log
    assert [c['endpoint'] for c in calls] == ['emails', 'emails']
    assert sorted(c['path'].rpartition('/')[2] for c in calls) == sorted(
        [','.join(values[:10]), ','.join(values[10:])]
    )
    assert all(c['query'] == {'severity': ['20,25,26,30'], 'since': [day(90)]} for c in calls)
    assert spycloud.stats()['max_in_flight'] == 2  # asked concurrently


def test_one_address_per_call_when_lists_are_off(make_relay, spycloud):
    values = [f'v{i}s{20 if i % 2 else 5}@single.example' for i in range(1, 21)]
    spycloud.latency = 0.05
    body = make_relay(spycloud_email_batch=1).deliberate([email(v) for v in values])
    assert verdict_values(body) == {v for v in values if 's20@' in v}
    calls = spycloud.request_log
    assert len(calls) == 20 and not any(',' in c['path'] for c in calls)
    assert spycloud.stats()['max_in_flight'] > 1


def test_paging_stops_at_the_first_page(relay, spycloud):
    spycloud.page_size = 1
    body = relay.deliberate([email('v1s20_v2s20_v3s20@pages.example')])
    assert verdict_values(body) == {'v1s20_v2s20_v3s20@pages.example'}
    assert len(records_calls(spycloud)) == 1


def test_spycloud_failures_are_the_envelope(relay, spycloud):
    spycloud.add_fault(500, match='broken')
    body = relay.deliberate([email('v3s20@broken.example'), {'type': 'user', 'value': 'v3s20'}])
    assert verdict_values(body) == {'v3s20'}
    assert [e['code'] for e in body['errors']] == ['internal error']


def test_verdicts_are_cached_and_shared_with_observe(make_relay, spycloud):
    relay = make_relay(records_cache_ttl_s=300)
    value = 'v10s20_v400s25@cached.example'
    first = relay.deliberate([email(value)])
    again = relay.deliberate([email(value)])
    assert first == again and verdict_values(first) == {value}
    assert len(records_calls(spycloud)) == 1
    # 30 days of records cannot decide a 90-day verdict: it takes the verdict, which is cached.
    body = relay.observe([email(value)], lookback_days='30')
    assert len(docs(body, 'verdicts')) == 1
    assert len(records_calls(spycloud)) == 2  # observe's records; the verdict came cached


@pytest.fixture
def count_pools(monkeypatch):
    """``count_pools()``: from then on, the list of every thread pool the client makes."""
    from concurrent.futures import ThreadPoolExecutor

    from spycloud_relay.spycloud import pool

    made = []

    class CountedPool(ThreadPoolExecutor):
        def __init__(self, *args, **kwargs):
            made.append(kwargs.get('max_workers', args[0] if args else None))
            super().__init__(*args, **kwargs)

    def start():
        monkeypatch.setattr(pool, 'ThreadPoolExecutor', CountedPool)
        return made

    return start


def test_a_warm_request_asks_the_cache_once_and_starts_no_thread(make_relay, spycloud, count_pools):
    relay = make_relay(records_cache_ttl_s=300)
    accounts = [email(f'v{d}s{s}@warm.example') for d, s in ((3, 20), (4, 5), (5, 25))]
    cold = relay.deliberate(accounts)
    assert verdict_values(cold) == {'v3s20@warm.example', 'v5s25@warm.example'}
    pools = count_pools()
    assert relay.deliberate(accounts) == cold
    assert pools == []  # every answer came from one read of the cache, in the request's thread
    assert len(records_calls(spycloud)) == 1  # one list of three addresses
    # One new account beside the cached ones: it alone is asked, and the order is kept.
    mixed = relay.deliberate([accounts[0], email('v6s20@new.example'), accounts[2]])
    assert [d['observable']['value'] for d in docs(mixed, 'verdicts')] == [
        'v3s20@warm.example',
        'v6s20@new.example',
        'v5s25@warm.example',
    ]
    assert len(records_calls(spycloud)) == 2
    assert pools == []  # one lookup runs inline, on no pool


def test_a_warm_observe_starts_no_thread_for_its_verdict(make_relay, spycloud, count_pools):
    """The verdict call goes beside the catalogs' on a pool of two; when the records decide the
    verdict, or the cache holds it, there is no call and no pool."""
    relay = make_relay(records_cache_ttl_s=300)
    value = 'v10s20_v400s25@beside.example'
    cold = relay.observe([email(value)], lookback_days='30')  # its records cannot decide
    assert len(records_calls(spycloud)) == 2  # the records, and the verdict call
    pools = count_pools()
    warm = relay.observe([email(value)], lookback_days='30')
    assert docs(warm, 'verdicts') == docs(cold, 'verdicts') and len(docs(warm, 'verdicts')) == 1
    assert len(records_calls(spycloud)) == 2 and pools == []
    decided = relay.observe([email('v10s25_v40s20@own-records.example')])  # a cold one
    assert len(docs(decided, 'verdicts')) == 1
    assert len(records_calls(spycloud)) == 3  # its records decided its verdict: no second call
    assert pools == []  # one catalog batch, inline: no pool either


def test_a_warm_request_reads_redis_once(make_relay, spycloud, fresh_redis):
    """On Redis the cache read of a request is one MGET, whatever the number of accounts."""
    import redis as redis_py

    accounts = [email(f'v{3 + i}s20@shared{i}.example') for i in range(5)]
    relay = make_relay(records_cache_ttl_s=300, redis_url=fresh_redis.url)
    cold = relay.deliberate(accounts)
    stats = redis_py.Redis.from_url(fresh_redis.url)
    stats.config_resetstat()
    assert relay.deliberate(accounts) == cold
    commands = stats.info('commandstats')
    assert len(records_calls(spycloud)) == 1  # one list of five addresses
    assert commands['cmdstat_mget']['calls'] == 1
    assert 'cmdstat_get' not in commands


def test_another_key_does_not_see_the_cache(make_relay, spycloud):
    relay = make_relay(records_cache_ttl_s=300)
    spycloud.api_keys.add('second-key')
    try:
        relay.deliberate([email('v10s20@tenant.example')])
        relay.deliberate([email('v10s20@tenant.example')], key='second-key')
    finally:
        spycloud.api_keys.discard('second-key')
    keys = [c['api_key'] for c in records_calls(spycloud)]
    assert keys == [data.DEFAULT_API_KEY, 'second-key']


def test_observe_returns_a_judgement_and_its_verdict(relay, spycloud):
    value = 'v10s25_v40s20_v200s25@judged.example'
    body = relay.observe([email(value)])
    assert body['data']['sightings']['count'] == 3
    (judgement,) = docs(body, 'judgements')
    (verdict,) = docs(body, 'verdicts')
    assert verdict['judgement_id'] == judgement['id']
    assert judgement['id'].startswith('transient:judgement-')
    assert judgement['disposition'] == 3 and judgement['disposition_name'] == 'Suspicious'
    assert (judgement['priority'], judgement['confidence'], judgement['source']) == (
        90,
        'High',
        'SpyCloud',
    )
    assert judgement['severity'] == 'Critical'
    assert judgement['reason'] == (
        f'2 exposures in 90 days, newest {day(10)}, worst: infostealer (25). Reset the password; '
        'isolate and re-image the device; check the password for reuse on other accounts.'
    )
    newest = next(
        s for s in docs(body, 'sightings') if s['observed_time']['start_time'].startswith(day(10))
    )
    assert judgement['source_uri'] == judgement['reason_uri'] == newest['source_uri']
    assert judgement['valid_time'] == verdict['valid_time']
    assert len(records_calls(spycloud)) == 1  # decided from observe's own records
    for record in data.records_for('emails', value):
        for secret in (record.get('password'), record.get('password_plaintext')):
            assert not secret or secret not in str(judgement)
    again = relay.observe([email(value)])
    assert docs(again, 'judgements')[0]['id'] == judgement['id']  # deterministic


def test_observe_asks_for_the_verdict_when_its_records_cannot_decide(relay, spycloud):
    value = 'v10s20_v20s25@filtered.example'
    body = relay.observe([email(value)], min_severity='25')  # the 20 is filtered out
    assert body['data']['sightings']['count'] == 1
    (judgement,) = docs(body, 'judgements')
    assert judgement['reason'].startswith(f'2 exposures in 90 days, newest {day(10)}')
    # The records and the verdict call, which go at once: their order is the network's.
    assert sorted(c['query']['severity'][0] for c in records_calls(spycloud)) == [
        '20,25,26,30',
        '25,26,30',
    ]


def test_a_plaintext_credential_is_a_high_judgement(relay):
    (judgement,) = docs(relay.observe([email('v3s20@high.example')]), 'judgements')
    assert judgement['severity'] == 'High'
    assert judgement['reason'].endswith(
        'worst: plaintext credential (20). Reset the password; check the password for reuse on '
        'other accounts.'
    )


@pytest.mark.parametrize('severity', [26, 30])
def test_access_data_records_are_critical_everywhere(relay, severity):
    body = relay.observe([email(f'v3s{severity}@access.example')])
    (sighting,) = docs(body, 'sightings')
    assert sighting['severity'] == 'Critical'
    (judgement,) = docs(body, 'judgements')
    assert judgement['severity'] == 'Critical'


def test_no_judgement_for_domains_or_old_exposures(relay):
    body = relay.observe(
        [{'type': 'domain', 'value': 'r3c1.judged.example'}, email('v120s25@old.example')]
    )
    assert 'judgements' not in body['data'] and 'verdicts' not in body['data']
    assert body['data']['sightings']['count'] == 4


def test_the_bundle_validates_with_judgements_and_verdicts(relay):
    body = relay.observe([email('v3s25@schema.example'), email('v4s20@schema.example')])
    BUNDLE.validate(body['data'])
    assert body['data']['judgements']['count'] == body['data']['verdicts']['count'] == 2


# -- records SpyCloud may send with odd dates and severities --------------------------------


def serve_record(spycloud, value, **fields):
    """SpyCloud answers every records call about ``value`` with one record of ``fields``
    (severity 25, published three days ago, unless given)."""
    record = {
        'document_id': f'odd-{value}',
        'source_id': 1,
        'email': value,
        'severity': 25,
        'spycloud_publish_date': f'{day(3)}T00:00:00Z',
        **fields,
    }
    spycloud.add_fault(
        200, match=re.escape(value), body={'cursor': '', 'hits': 1, 'results': [record]}
    )


def the_verdict(body):
    assert 'errors' not in body, body
    (verdict,) = docs(body, 'verdicts')
    return verdict


@pytest.mark.parametrize('published', ['9999-12-31', '9999-12-31T00:00:00Z'])
def test_a_record_dated_at_the_end_of_time_is_no_error_and_nothing_bad_is_cached(
    make_relay, spycloud, published
):
    relay = make_relay(records_cache_ttl_s=300)
    value = 'end.of.time@dates.example'
    serve_record(spycloud, value, spycloud_publish_date=published)
    now = {'start_time': f'{day(0)}T00:00:00.000Z', 'end_time': f'{day(-90)}T00:00:00.000Z'}
    for _ in range(2):  # the second answers from the cache
        assert the_verdict(relay.deliberate([email(value)]))['valid_time'] == now
        assert the_verdict(relay.observe([email(value)]))['valid_time'] == now


def test_a_record_published_in_the_future_counts_as_published_today(relay, spycloud):
    value = 'future@dates.example'
    serve_record(spycloud, value, spycloud_publish_date=f'{day(-400)}T00:00:00Z')
    assert the_verdict(relay.deliberate([email(value)]))['valid_time'] == {
        'start_time': f'{day(0)}T00:00:00.000Z',
        'end_time': f'{day(-90)}T00:00:00.000Z',
    }
    (judgement,) = docs(relay.observe([email(value)]), 'judgements')
    assert f'newest {day(0)},' in judgement['reason']


@pytest.mark.parametrize('severity', [25.0, '25.0', ' 25 ', '25'])
def test_a_numeric_severity_is_read_whatever_its_form(relay, spycloud, severity):
    value = 'numeric.severity@sev.example'
    serve_record(spycloud, value, severity=severity)
    assert verdict_values(relay.deliberate([email(value)])) == {value}
    body = relay.observe([email(value)])
    (judgement,) = docs(body, 'judgements')
    assert judgement['reason'].endswith(
        'worst: infostealer (25). Reset the password; isolate and re-image the device; check '
        'the password for reuse on other accounts.'
    )
    assert [s['severity'] for s in docs(body, 'sightings')] == ['Critical']


@pytest.mark.parametrize('severity', ['high', 25.5, '25.5', float('inf'), True, [25], '2' * 5000])
def test_a_severity_that_is_no_number_is_unknown(relay, spycloud, severity):
    value = 'garbage.severity@sev.example'
    serve_record(spycloud, value, severity=severity)
    assert relay.deliberate([email(value)]) == {'data': {}}
    body = relay.observe([email(value)])
    assert 'errors' not in body
    assert [s['severity'] for s in docs(body, 'sightings')] == ['Unknown']
