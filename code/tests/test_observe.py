"""POST /observe/observables end to end: relay over HTTP, SpyCloud simulator, local JWKS."""

import re
from datetime import datetime
from uuid import NAMESPACE_X500, uuid5

import pytest

from simulator import data
from support import docs, email, single_error

SEVERITY = {2: 'Low', 5: 'Medium', 20: 'High', 25: 'Critical'}


def records(value):
    return data.records_for('emails', value)


def ctim_date(iso):
    return datetime.strptime(iso, '%Y-%m-%dT%H:%M:%SZ').strftime('%Y-%m-%dT%H:%M:%S.000Z')


def find_address(predicate, template):
    """The first deterministic simulator address whose data has the property a test needs."""
    for n in range(500):
        value = template.format(n=n)
        if predicate(value):
            return value
    raise AssertionError('no simulator address fits')


def test_sightings_one_per_record_newest_first(relay):
    value = 'r8c3@acme.example'
    body = relay.observe([email(value)])
    expected = records(value)
    sightings = docs(body, 'sightings')
    assert [s['id'] for s in sightings] == [
        f'transient:sighting-{uuid5(NAMESPACE_X500, r["document_id"])}' for r in expected
    ]
    dates = [s['observed_time']['start_time'] for s in sightings]
    assert dates == sorted(dates, reverse=True)
    for sighting, record in zip(sightings, expected, strict=True):
        catalog = data.catalog(record['source_id'])
        assert sighting['type'] == 'sighting'
        assert sighting['source'] == 'SpyCloud'
        assert sighting['title'] == 'Reported to SpyCloud'
        assert sighting['confidence'] == 'High'
        assert sighting['internal'] is False
        assert sighting['description'] == f'Present in {catalog["title"]}'
        assert (
            sighting['source_uri']
            == f'https://portal.spycloud.com/breach/catalog/{catalog["uuid"]}'
        )
        assert sighting['observables'] == [email(value)]
        assert sighting['targets'] == [
            {
                'type': 'email',
                'observables': [email(value)],
                'observed_time': sighting['observed_time'],
            }
        ]
        assert sighting['observed_time'] == {
            'start_time': ctim_date(record['spycloud_publish_date']),
            'end_time': ctim_date(record['spycloud_publish_date']),
        }
        assert sighting['count'] == record.get('sighting', 1)
        assert sighting['external_ids'][:2] == [record['document_id'], str(record['source_id'])]
    assert body['data']['sightings']['count'] == 8
    assert 'errors' not in body


def test_severities_follow_the_spycloud_scale(relay):
    value = find_address(
        lambda v: not any(data.catalog(r['source_id']).get('combo_list_flag') for r in records(v)),
        'r4c4-{n}@sev.example',
    )
    body = relay.observe([email(value)])
    got = [s['severity'] for s in docs(body, 'sightings')]
    assert got == [SEVERITY[r['severity']] for r in records(value)]
    assert set(got) == {'Low', 'Medium', 'High', 'Critical'}


def test_combo_list_is_medium(relay):
    value = find_address(
        lambda v: any(
            data.catalog(r['source_id']).get('combo_list_flag') == 'YES' and r['severity'] != 5
            for r in records(v)
        ),
        'r6c6-{n}@combo.example',
    )
    body = relay.observe([email(value)])
    for sighting, record in zip(docs(body, 'sightings'), records(value), strict=True):
        if data.catalog(record['source_id']).get('combo_list_flag') == 'YES':
            assert sighting['severity'] == 'Medium'
        else:
            assert sighting['severity'] == SEVERITY[record['severity']]


def test_indicators_one_per_catalog_with_relationships(relay):
    value = 'r9c3@acme.example'
    body = relay.observe([email(value)])
    ids = data.catalog_ids_for('emails', value)
    indicators = docs(body, 'indicators')
    assert [i['id'] for i in indicators] == [
        f'transient:indicator-{uuid5(NAMESPACE_X500, str(c))}' for c in ids
    ]
    for indicator, catalog_id in zip(indicators, ids, strict=True):
        catalog = data.catalog(catalog_id)
        assert indicator['producer'] == 'SpyCloud'
        assert indicator['title'] == catalog['title']
        assert indicator['short_description'] == catalog['title']
        assert indicator['description'] == catalog['description']
        assert indicator['external_ids'] == [str(catalog_id), catalog['uuid']]
        assert indicator['valid_time'] == {
            'start_time': ctim_date(catalog['spycloud_publish_date'])
        }
        assert indicator['tags'] == list(catalog['assets'])
        assert indicator['confidence'] == {1: 'High', 2: 'Medium', 3: 'Low'}[catalog['confidence']]
    relationships = docs(body, 'relationships')
    by_catalog = {c: f'transient:indicator-{uuid5(NAMESPACE_X500, str(c))}' for c in ids}
    assert [(r['source_ref'], r['target_ref']) for r in relationships] == [
        (s['id'], by_catalog[rec['source_id']])
        for s, rec in zip(docs(body, 'sightings'), records(value), strict=True)
    ]
    assert {r['relationship_type'] for r in relationships} == {'sighting-of'}


def test_leaked_from_points_at_real_sites_only(relay):
    value = find_address(
        lambda v: (
            {data.catalog(r['source_id'])['site'] == 'n/a' for r in records(v)} == {True, False}
        ),
        'r6c6-{n}@leak.example',
    )
    body = relay.observe([email(value)])
    for sighting, record in zip(docs(body, 'sightings'), records(value), strict=True):
        site = data.catalog(record['source_id'])['site']
        if site == 'n/a':
            assert sighting['relations'] == []
        else:
            assert sighting['relations'] == [
                {
                    'origin': 'SpyCloud Breach Module',
                    'relation': 'Leaked_From',
                    'source': email(value),
                    'related': {'type': 'domain', 'value': site},
                }
            ]


def test_passwords_are_masked_by_default(relay):
    value = 'r12c3@mask.example'
    body = relay.observe([email(value)])
    text = str(body)
    secrets = [
        r[f] for r in records(value) for f in ('password', 'password_plaintext', 'salt') if r.get(f)
    ]
    assert secrets
    for secret in secrets:
        assert secret not in text
    for sighting, record in zip(docs(body, 'sightings'), records(value), strict=True):
        table = sighting['data']
        row = dict(zip([c['name'] for c in table['columns']], table['rows'][0], strict=True))
        if 'password_plaintext' in record:
            plain = record['password_plaintext']
            assert (
                row['password_plaintext']
                == f'{plain[0]}*****{plain[-1]} (plaintext, {len(plain)} chars)'
            )
        if 'password' in record:
            assert re.fullmatch(r'.\*{5}. \(\w[\w-]*, \d+ chars\)', row['password'])


def test_show_passwords_setting_reveals_them(relay):
    value = 'r4c2@mask.example'
    body = relay.observe([email(value)], show_passwords=True)
    text = str(body)
    plain = [r['password_plaintext'] for r in records(value) if 'password_plaintext' in r]
    assert plain and all(p in text for p in plain)


def test_data_table_hides_ids_and_keeps_context(relay):
    value = 'r4c2@table.example'
    body = relay.observe([email(value)])
    for sighting, record in zip(docs(body, 'sightings'), records(value), strict=True):
        names = [c['name'] for c in sighting['data']['columns']]
        assert 'document_id' not in names and 'severity' not in names
        assert 'email' in names
        assert len(sighting['data']['rows'][0]) == len(names)
        if 'ip_addresses' in record:
            row = dict(zip(names, sighting['data']['rows'][0], strict=True))
            assert row['ip_addresses'] == ', '.join(record['ip_addresses'])


@pytest.mark.parametrize(
    'limit, shown', [(5, 5), ('7', 7), ('abc', 100), (-3, 100), (0, 100), (None, 100)]
)
def test_entities_limit(relay, limit, shown):
    body = relay.observe([email('r120c4@limit.example')], CTR_ENTITIES_LIMIT=limit)
    assert body['data']['sightings']['count'] == shown
    (warning,) = body['errors']
    assert warning['type'] == 'warning'
    assert f'newest {shown} of 120' in warning['message']


def test_entities_limit_is_capped_at_1000(relay, spycloud):
    body = relay.observe(
        [email('r1100c4@limit.example')], CTR_ENTITIES_LIMIT=5000, verdict_days=0
    )  # no verdict lookup beside: the calls are observe's
    assert body['data']['sightings']['count'] == 1000
    assert 'newest 1000 of 1100' in body['errors'][0]['message']
    assert spycloud.stats()['by_endpoint']['emails'] == 1  # one page of 1000 was enough


def test_paging_collects_records_across_pages(relay, spycloud):
    spycloud.page_size = 3
    value = 'r10c2@paging.example'
    body = relay.observe([email(value)])
    assert body['data']['sightings']['count'] == 10
    assert 'errors' not in body
    assert spycloud.stats()['by_endpoint']['emails'] == 4


def test_paging_stops_once_the_limit_is_reached(relay, spycloud):
    spycloud.page_size = 3
    body = relay.observe(
        [email('r10c2@paging.example')], CTR_ENTITIES_LIMIT=4, verdict_days=0
    )  # no verdict lookup beside: the calls are observe's
    assert body['data']['sightings']['count'] == 4
    assert spycloud.stats()['by_endpoint']['emails'] == 2


def test_one_catalog_call_per_distinct_source(make_relay, spycloud):
    relay = make_relay(spycloud_catalog_batch=1)
    relay.observe([email('r40c5@calls.example')])
    assert spycloud.stats()['by_endpoint']['catalog'] == 5
    relay.observe([email('r40c5@calls.example')])
    assert spycloud.stats()['by_endpoint']['catalog'] == 5  # cached


def test_sources_are_fetched_in_one_batched_call(relay, spycloud):
    relay.observe([email('r40c5@batched.example')])
    assert spycloud.stats()['by_endpoint']['catalog'] == 1


def test_duplicates_and_unsupported_types_are_dropped(relay, spycloud):
    value = 'r2c1@dup.example'
    body = relay.observe(
        [
            email(value),
            {'type': 'EMAIL', 'value': value},
            {'type': 'url', 'value': 'https://x.example/'},
            {'type': 'sha256', 'value': 'ab'},
            email(value),
        ]
    )
    assert body['data']['sightings']['count'] == 2
    assert spycloud.stats()['by_endpoint']['emails'] == 1


def test_nothing_supported_answers_empty_data_without_spycloud(relay, spycloud):
    assert relay.observe([{'type': 'sha1', 'value': 'a' * 40}]) == {'data': {}}
    assert relay.observe([]) == {'data': {}}
    assert spycloud.stats()['requests'] == 0


def test_nothing_supported_still_needs_a_valid_token(relay):
    response = relay.post(
        '/observe/observables', [{'type': 'url', 'value': 'https://a.b/'}], token='garbage'
    )
    single_error(response, 'authorization error')


def test_no_records_answers_empty_data(relay):
    assert relay.observe([email('none@clean.example')]) == {'data': {}}


def test_address_that_needs_escaping(relay, spycloud):
    value = 'r2c1-t+g/x?y#z@esc.example'
    body = relay.observe([email(value)])
    assert docs(body, 'sightings')[0]['observables'] == [email(value)]
    (call,) = [c for c in spycloud.request_log if c['endpoint'] == 'emails']
    assert call['path'].endswith('/breach/data/emails/r2c1-t%2Bg%2Fx%3Fy%23z@esc.example')
    assert body['data']['sightings']['count'] == 2  # SpyCloud read the whole address back


@pytest.mark.parametrize(
    'payload, fragment',
    [
        ('not json', 'must be a JSON array'),
        ('{"type": "email", "value": "a@b.c"}', 'Invalid input type'),
        ('[{"type": "email"}]', 'Missing data for required field.'),
        ('[{"type": "", "value": "a@b.c"}]', 'Field may not be blank.'),
        ('[{"type": "email", "value": 42}]', 'Not a valid string.'),
        ('[1, 2]', 'Invalid input type'),
    ],
)
def test_invalid_body(relay, payload, fragment):
    response = relay.post('/observe/observables', data=payload)
    assert fragment in single_error(response, 'invalid argument')['message']


def test_missing_catalog_is_a_warning_and_sightings_stay(relay, spycloud):
    value = 'r6c3@missing.example'
    gone = data.catalog_ids_for('emails', value)[1]
    spycloud.missing_catalogs.add(gone)
    body = relay.observe([email(value)])
    assert body['data']['sightings']['count'] == 6
    assert body['data']['indicators']['count'] == 2
    assert body['errors'] == [
        {
            'type': 'warning',
            'code': 'not found',
            'message': f'SpyCloud did not return results for {gone}',
        }
    ]
    pairs = zip(docs(body, 'sightings'), records(value), strict=True)
    orphans = [s for s, r in pairs if r['source_id'] == gone]
    assert orphans and all('source_uri' not in s and s['relations'] == [] for s in orphans)


def test_fatal_error_after_a_success_keeps_earlier_entities(relay, spycloud):
    spycloud.add_fault(500, match='second')
    body = relay.observe([email('r3c1@first.example'), email('r3c1@second.example')])
    assert body['data']['sightings']['count'] == 3
    assert body['errors'][0]['code'] == 'internal error'
    assert body['errors'][0]['type'] == 'fatal'


class _EveryCatalog(dict):
    """The simulator's catalog overrides: the same fields for every catalog."""

    def __init__(self, fields):
        super().__init__()
        self.fields = fields

    def get(self, key, default=None):
        return self.fields


def links(node):
    """Every URI or URL anywhere in a CTIM answer."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name.endswith(('_uri', 'url')) and isinstance(value, str):
                yield value
            else:
                yield from links(value)
    elif isinstance(node, list):
        for item in node:
            yield from links(item)


@pytest.mark.parametrize(
    'uuid', ['x)![p](https://evil.example/t.png', 'javascript:alert(1)', '../../admin', 'a b']
)
def test_a_catalog_uuid_that_is_no_uuid_makes_no_portal_link(relay, spycloud, uuid):
    """A breach's uuid comes from whoever fed the breach: observe links a sighting, an
    indicator and a judgement to SpyCloud's portal only with a uuid of letters, digits and
    dashes, so the link never leaves the portal."""
    spycloud.catalog_overrides = _EveryCatalog({'uuid': uuid, 'description': 'A breach.'})
    body = relay.observe([email('v3s25_v5s20@hostile.example')])
    assert docs(body, 'sightings') and docs(body, 'judgements')
    assert not any(uuid in link for link in links(body['data'])), list(links(body['data']))
    spycloud.catalog_overrides = _EveryCatalog({'uuid': 'ab12-cd34', 'description': 'A breach.'})
    body = relay.observe([email('v3s25_v5s20@safe.example')])
    portal = 'https://portal.spycloud.com/breach/catalog/ab12-cd34'
    assert all(s['source_uri'] == portal for s in docs(body, 'sightings'))
    assert all(j['reason_uri'] == portal for j in docs(body, 'judgements'))
