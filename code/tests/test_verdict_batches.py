"""Verdict lookups of several e-mails in one call (spycloud/batching.py).

The lists must never cost a verdict: whatever the server makes of ``a@x,b@y`` (reads it as a
list, as one odd address, or refuses it), every answer here is the one a relay asking one
address per call gives. ``v{D}s{S}`` addresses hold one record D days old of severity S.
"""

import logging
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from support import docs, email, verdict_values

EXPOSED = ['v3s20@a.example', 'v4s25@b.example']
CLEAN = ['v5s5@c.example', 'none@d.example']  # a record below the minimum, and no record
A_LIST = r'emails/[^?]*,'  # a fault's pattern for the path of a list (the query has commas too)


def calls(spycloud):
    """The addresses of each records call, sorted (calls made at once arrive in any order)."""
    return sorted(
        (
            tuple(c['path'].rpartition('/')[2].split(','))
            for c in spycloud.request_log
            if c['endpoint'] == 'emails'
        ),
        key=lambda addresses: (-len(addresses), addresses),
    )


def test_a_list_answer_is_the_answer_of_one_call_per_address(make_relay, spycloud):
    values = [f'v{d}s{s}@same.example' for d in range(1, 8) for s in (5, 20, 25, 30)]
    listed = make_relay().deliberate([email(v) for v in values])
    assert [len(c) for c in calls(spycloud)] == [10, 10, 8]
    spycloud.reset_stats()
    alone = make_relay(spycloud_email_batch=1).deliberate([email(v) for v in values])
    assert len(calls(spycloud)) == len(values)
    assert listed == alone and len(docs(listed, 'verdicts')) == 21


def test_an_empty_list_is_trusted_only_once_lists_are_proven(relay, spycloud, caplog):
    caplog.set_level(logging.INFO, logger='spycloud_relay.spycloud.batching')
    assert relay.deliberate([email(v) for v in CLEAN]) == {'data': {}}
    assert calls(spycloud) == [tuple(CLEAN)] + sorted((v,) for v in CLEAN)  # asked again, alone
    spycloud.reset_stats()
    assert verdict_values(relay.deliberate([email(v) for v in EXPOSED + CLEAN])) == set(EXPOSED)
    assert calls(spycloud) == [tuple(EXPOSED + CLEAN)]  # a record about a member: proven
    spycloud.reset_stats()
    others = ['v6s5@e.example', 'none@f.example']
    assert relay.deliberate([email(v) for v in others]) == {'data': {}}
    assert calls(spycloud) == [tuple(others)]  # now an empty list is an answer
    relay.deliberate([email(v) for v in EXPOSED])
    said = [r.getMessage() for r in caplog.records if r.name == 'spycloud_relay.spycloud.batching']
    assert said == ['SpyCloud reads lists of e-mails: up to 10 addresses per call']  # once


def test_a_server_reading_the_list_as_one_address_loses_no_verdict(relay, spycloud, caplog):
    spycloud.email_lists = 'literal'
    caplog.set_level(logging.INFO, logger='spycloud_relay.spycloud.batching')
    assert relay.deliberate([email(v) for v in CLEAN]) == {'data': {}}
    assert calls(spycloud) == [tuple(CLEAN)] + sorted((v,) for v in CLEAN)  # still unknown
    spycloud.reset_stats()
    values = EXPOSED + CLEAN
    assert verdict_values(relay.deliberate([email(v) for v in values])) == set(EXPOSED)
    assert calls(spycloud) == [tuple(values)] + sorted((v,) for v in values)
    # Empty for the list, yet two of its addresses have records: the server reads no lists.
    spycloud.reset_stats()
    others = ['v7s30@g.example', 'v8s5@h.example']
    assert verdict_values(relay.deliberate([email(v) for v in others])) == {others[0]}
    assert calls(spycloud) == sorted((v,) for v in others)
    said = [r.getMessage() for r in caplog.records if r.name == 'spycloud_relay.spycloud.batching']
    assert len(said) == 1 and said[0].startswith('SpyCloud answered a list of e-mails with nothing')


def test_a_refused_list_turns_lists_off(relay, spycloud, caplog):
    spycloud.email_lists = 'refuse'
    with caplog.at_level(logging.INFO, logger='spycloud_relay.spycloud.batching'):
        body = relay.deliberate([email(v) for v in EXPOSED + CLEAN])
        assert verdict_values(body) == set(EXPOSED) and 'errors' not in body
        assert calls(spycloud) == [tuple(EXPOSED + CLEAN)] + sorted((v,) for v in EXPOSED + CLEAN)
        spycloud.reset_stats()
        assert verdict_values(relay.deliberate([email(v) for v in EXPOSED])) == set(EXPOSED)
    assert calls(spycloud) == sorted((v,) for v in EXPOSED)  # no list again
    said = [r.getMessage() for r in caplog.records if r.name == 'spycloud_relay.spycloud.batching']
    assert said == ['SpyCloud refused a list of e-mails; asking one address per call from now on']


def test_a_refusal_after_the_proof_asks_that_list_alone(relay, spycloud):
    relay.deliberate([email(v) for v in EXPOSED])  # proven
    spycloud.refuse_parameter('email', match=A_LIST, times=1)
    spycloud.reset_stats()
    assert verdict_values(relay.deliberate([email(v) for v in EXPOSED + CLEAN])) == set(EXPOSED)
    assert calls(spycloud) == [tuple(EXPOSED + CLEAN)] + sorted((v,) for v in EXPOSED + CLEAN)
    spycloud.reset_stats()
    relay.deliberate([email(v) for v in CLEAN])
    assert calls(spycloud) == [tuple(CLEAN)]  # lists stay on: one odd 400 is not a refusal


def test_a_list_longer_than_a_page_is_asked_alone(relay, spycloud):
    spycloud.page_size = 2
    values = ['v1s20_v2s25@long.example', 'v3s20@short.example']  # three qualifying records
    assert verdict_values(relay.deliberate([email(v) for v in values])) == set(values)
    assert calls(spycloud) == [tuple(values)] + sorted([(values[0],), (values[1],)])
    (judgement,) = docs(relay.observe([email(values[0])]), 'judgements')
    assert judgement['reason'].startswith('2 exposures in 90 days')  # counted in full


def test_a_record_about_another_address_is_not_trusted(relay, spycloud):
    stranger = {
        'document_id': 'f00d',
        'source_id': 1,
        'spycloud_publish_date': '2026-11-20T00:00:00Z',
        'severity': 25,
        'email': 'stranger@elsewhere.example',
    }
    relay.deliberate([email(v) for v in EXPOSED])  # proven: an empty list would be trusted
    spycloud.add_fault(
        200, match=A_LIST, times=1, body={'cursor': '', 'hits': 1, 'results': [stranger]}
    )
    spycloud.reset_stats()
    assert verdict_values(relay.deliberate([email(v) for v in EXPOSED + CLEAN])) == set(EXPOSED)
    assert calls(spycloud) == [tuple(EXPOSED + CLEAN)] + sorted((v,) for v in EXPOSED + CLEAN)


def test_only_plain_addresses_are_listed_and_the_order_is_kept(relay, spycloud):
    observables = [
        email('v3s20@first.example'),
        {'type': 'user', 'value': 'v4s25'},
        email('"v5s20,x"@quoted.example'),  # a comma of its own
        email('v6s20@sp ace.example'),  # a space
        email('V7S20@Third.Example'),
    ]
    body = relay.deliberate(observables)
    assert [d['observable']['value'] for d in docs(body, 'verdicts')] == [
        'v3s20@first.example',
        'v4s25',
        'v6s20@sp ace.example',
        'V7S20@Third.Example',
    ]
    assert calls(spycloud) == [
        ('v3s20@first.example', 'v7s20@third.example'),  # as SpyCloud files them: lower case
        ('%22v5s20%2Cx%22@quoted.example',),  # its own comma escaped: never read as a list
        ('v6s20@sp%20ace.example',),
    ]
    assert [c['endpoint'] for c in spycloud.request_log].count('usernames') == 1


def test_each_address_of_a_list_is_cached_for_deliberate_and_observe(make_relay, spycloud):
    relay = make_relay(records_cache_ttl_s=300)
    values = ['v10s20_v400s25@one.example', 'v11s25@two.example', 'none@three.example']
    listed = relay.deliberate([email(v) for v in values])
    assert len(calls(spycloud)) == 1
    for value in values:
        alone = relay.deliberate([email(value)])
        assert docs(alone, 'verdicts') == [
            d for d in docs(listed, 'verdicts') if d['observable']['value'] == value
        ]
    assert len(calls(spycloud)) == 1
    body = relay.observe([email(values[0])], lookback_days='30')  # its records cannot decide
    assert len(docs(body, 'verdicts')) == 1 and len(calls(spycloud)) == 2  # its records only
    # The evidence a list left is what one call for the address leaves: the same judgement.
    alone = make_relay(records_cache_ttl_s=300, spycloud_email_batch=1)
    assert body == alone.observe([email(values[0])], lookback_days='30')
    assert docs(body, 'judgements')[0]['reason'].startswith('1 exposure in 90 days')


def test_a_list_refused_for_one_address_is_asked_alone(relay, spycloud):
    # SpyCloud searches only the identifiers on the key's watchlist; a 403 for a list may be
    # about one address in it, so the others are asked one by one.
    spycloud.add_fault(403, match=A_LIST, times=1)
    spycloud.add_fault(403, match=f'emails/{EXPOSED[1]}\\?')
    body = relay.deliberate([email(v) for v in EXPOSED + CLEAN])
    assert verdict_values(body) == {EXPOSED[0]}
    (warning,) = body['errors']
    assert warning['code'] == 'permission denied' and EXPOSED[1] in warning['message']
    assert calls(spycloud) == [tuple(EXPOSED + CLEAN)] + sorted((v,) for v in EXPOSED + CLEAN)


@pytest.mark.parametrize(
    'fault, code',
    [
        (dict(status=403, headers={'SpyCloud-Error': 'Invalid IP 1.2.3.4'}), 'authorization error'),
        (dict(status=500), 'internal error'),
    ],
)
def test_a_failed_list_fails_each_of_its_addresses(relay, spycloud, fault, code):
    spycloud.add_fault(match=A_LIST, **fault)
    body = relay.deliberate([email(v) for v in EXPOSED] + [{'type': 'user', 'value': 'v4s25'}])
    assert verdict_values(body) == {'v4s25'}  # the username was asked on its own
    assert {e['code'] for e in body['errors']} == {code}


def test_a_list_cut_short_by_the_deadline_warns_for_each_address(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=1.0)
    spycloud.add_fault(mode='hang', match=A_LIST, delay=5.0)
    body = relay.deliberate([email(v) for v in EXPOSED] + [{'type': 'user', 'value': 'v4s25'}])
    assert verdict_values(body) == {'v4s25'}
    messages = [e['message'] for e in body['errors'] if e['code'] == 'deadline exceeded']
    assert messages and all(v in ' '.join(messages) for v in EXPOSED)


# -- observe: when its filters are narrower than the rule, its verdicts are deliberate's -------


def test_observe_asks_the_verdicts_of_its_accounts_in_lists(make_relay, spycloud):
    values = [f'v{d}s{s}@observed.example' for d in range(1, 6) for s in (5, 20, 25, 30)]
    observables = [email(v) for v in values] + [{'type': 'domain', 'value': 'r3c1.example'}]
    unpaced = {'spycloud_rate_limit': 0}  # about 40 calls, 57 alone: past the default burst
    listed = make_relay(**unpaced).observe(observables, min_severity='25')  # no 20s in records
    verdict_calls = [
        c for c in spycloud.request_log if c['query'].get('severity') == ['20,25,26,30']
    ]
    assert sorted(len(c['path'].split(',')) for c in verdict_calls) == [10, 10]
    assert len(calls(spycloud)) == 2 + len(values)  # two lists beside the records calls
    spycloud.reset_stats()
    alone = make_relay(spycloud_email_batch=1, **unpaced).observe(observables, min_severity='25')
    assert listed == alone
    assert len(docs(listed, 'verdicts')) == len(docs(listed, 'judgements')) == 15
    assert {d['observable']['type'] for d in docs(listed, 'verdicts')} == {'email'}


def test_observe_keeps_its_sightings_when_the_verdicts_fail(relay, spycloud):
    spycloud.add_fault(500, match=r'severity=20%2C')  # the verdict calls only
    body = relay.observe([email(v) for v in EXPOSED], min_severity='25')
    assert body['data']['sightings']['count'] == 1  # v4s25's; v3s20's is filtered out
    assert 'verdicts' not in body['data']
    messages = sorted(e['message'] for e in body['errors'])
    assert len(messages) == 2 and all(m.startswith('No verdict for v') for m in messages)


def test_observe_says_once_that_the_deadline_cut_its_verdict_short(make_relay, spycloud):
    relay = make_relay(lookup_deadline_s=1.0)
    spycloud.add_fault(mode='hang', match=r'severity=20%2C', delay=5.0)
    body = relay.observe([email(v) for v in EXPOSED], min_severity='25')
    assert body['data']['sightings']['count'] == 1 and 'verdicts' not in body['data']
    cut = [e['message'] for e in body['errors'] if e['code'] == 'deadline exceeded']
    assert sorted(cut) == [
        f'The lookup deadline (1 s) cut short the verdict lookup of {v}.' for v in EXPOSED
    ]


def recent_page(value, severity=25):
    """A page holding one record about ``value``, published three days ago."""
    published = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    record = {
        'document_id': f'doc-{value}',
        'source_id': 1,
        'email': value,
        'severity': severity,
        'spycloud_publish_date': f'{published}T00:00:00Z',
    }
    return {'cursor': '', 'hits': 1, 'results': [record]}


def test_a_look_alike_address_is_asked_alone_and_never_takes_the_verdict_of_another(
    relay, spycloud
):
    plain, kelvin = 'kate@lookalike.example', '\u212aate@lookalike.example'  # KELVIN SIGN
    spycloud.add_fault(200, match='%E2%84%AA', body={'cursor': '', 'hits': 0, 'results': []})
    spycloud.add_fault(200, match='kate@lookalike', body=recent_page(plain))
    values = [plain, kelvin, 'none@lookalike.example']
    assert verdict_values(relay.deliberate([email(v) for v in values])) == {plain}
    assert calls(spycloud) == [(plain, values[2]), (quote(kelvin, safe='@'),)]


def test_a_value_with_a_comma_or_a_percent_sign_is_never_in_a_list(relay, spycloud):
    odd = ['x,y@comma.example', 'x%2Cy@percent.example']
    relay.deliberate([email(v) for v in EXPOSED + odd])
    assert calls(spycloud) == [tuple(EXPOSED)] + sorted((quote(v, safe='@'),) for v in odd)
    assert all('%' not in c['path'] for c in spycloud.request_log if ',' in c['path'])


def test_lists_turned_off_stay_off_when_an_earlier_list_answers_later(relay, spycloud):
    """Request 1's list waits at SpyCloud while request 2's list is refused (lists off); then
    request 1's list answers with a proof. Lists stay off: the state only moves forward."""
    gate = threading.Event()
    first, second = ['v3s20@slow.example', 'none@slow.example'], ['v4s25@fast.example', 'none@x']
    slow = spycloud.add_fault(200, match='slow.example,', body=recent_page(first[0]), hold=gate)
    spycloud.refuse_parameter('email', match='fast.example,')
    answers = {}
    waiting = threading.Thread(target=lambda: answers.update(first=deliberate(relay, first)))
    waiting.start()
    try:
        assert slow.taken.wait(10)
        assert verdict_values(relay.deliberate([email(v) for v in second])) == {second[0]}
    finally:
        gate.set()
        waiting.join(10)
    assert verdict_values(answers['first']) == {first[0]}
    spycloud.reset_stats()
    third = ['v5s20@after.example', 'v6s25@after.example']
    assert verdict_values(relay.deliberate([email(v) for v in third])) == set(third)
    assert calls(spycloud) == sorted((v,) for v in third)  # one address per call: still off


def deliberate(relay, values):
    return relay.deliberate([email(v) for v in values])
