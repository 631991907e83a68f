"""POST /refer/observables end to end: relay over HTTP, SpyCloud simulator, local JWKS.

Refer links an observable into SpyCloud's portal: the portal's home (SpyCloud has no page per
value) and the catalog page of each breach source that exposed it. It reuses what observe left
in the records cache; cold, it asks for the first page of records only (one call), and the
sources the catalog cache does not hold (ten ids per call).
"""

from urllib.parse import quote

import pytest

from simulator import data
from support import assert_valid_refs, email, refused

PORTAL = 'https://portal.spycloud.com/'
CATALOG_PAGE = 'https://portal.spycloud.com/breach/catalog/{uuid}'
KINDS = {'email': 'emails', 'domain': 'domains', 'ip': 'ips', 'user': 'usernames'}


def sources(kind, value):
    """The simulator's breach sources of a value, in the order of its records (newest first)."""
    return list(dict.fromkeys(r['source_id'] for r in data.records_for(KINDS[kind], value)))


def search_ref(kind, value):
    label = {'ip': 'IP', 'user': 'username'}.get(kind, kind)
    return {
        'id': f'ref-spycloud-search-{kind}-{quote(value, safe="")}',
        'title': f'Search for this {label}',
        'description': f'Open the SpyCloud portal and search for this {label} there',
        'url': PORTAL,
        'categories': ['SpyCloud', 'Search'],
    }


def catalog_urls(body):
    return [r['url'] for r in body['data'] if r['categories'] == ['SpyCloud', 'Breach']]


def expected_catalog_urls(kind, value):
    return [CATALOG_PAGE.format(uuid=data.catalog(i)['uuid']) for i in sources(kind, value)]


def calls(spycloud):
    """The simulator's calls by endpoint, those it received only."""
    return {name: n for name, n in spycloud.stats()['by_endpoint'].items() if n}


def test_cold_email_links_the_portal_and_each_source_after_one_records_call(relay, spycloud):
    """Cold: one records call (the first page), and the sources' catalogs, which this fresh
    relay has not cached: three sources, one batched catalog call."""
    value = 'r9c3@acme.example'
    body = relay.refer([email(value)])
    assert 'errors' not in body
    assert body['data'][0] == search_ref('email', value)
    assert len(sources('email', value)) == 3
    assert catalog_urls(body) == expected_catalog_urls('email', value)
    for ref, catalog_id in zip(body['data'][1:], sources('email', value), strict=True):
        title = data.catalog(catalog_id)['title']
        assert ref == {
            'id': f'ref-spycloud-catalog-email-{quote(value, safe="")}-{catalog_id}',
            'title': f'SpyCloud breach: {title}',
            'description': f'The SpyCloud catalog page of {title}, '
            'a breach source that exposed this email',
            'url': CATALOG_PAGE.format(uuid=data.catalog(catalog_id)['uuid']),
            'categories': ['SpyCloud', 'Breach'],
        }
    assert calls(spycloud) == {'emails': 1, 'catalog': 1}
    assert spycloud.stats()['requests'] == 2
    # The catalogs are cached now: the next cold refer (this relay caches no records) asks
    # for the records only.
    again = relay.refer([email(value)])
    assert again == body
    assert calls(spycloud) == {'emails': 2, 'catalog': 1}


def test_cold_refer_reads_the_first_page_only(relay, spycloud):
    spycloud.page_size = 3
    value = 'r10c2@paging.example'
    first_page = data.records_for('emails', value)[:3]
    body = relay.refer([email(value)])
    assert calls(spycloud)['emails'] == 1
    shown = dict.fromkeys(r['source_id'] for r in first_page)
    assert catalog_urls(body) == [CATALOG_PAGE.format(uuid=data.catalog(i)['uuid']) for i in shown]


def test_warm_after_observe_makes_no_spycloud_call_and_links_every_source(make_relay, spycloud):
    relay = make_relay(records_cache_ttl_s=300.0)
    value = 'r12c4@warm.example'
    relay.observe([email(value)])
    spycloud.reset_stats()
    body = relay.refer([email(value)])
    assert spycloud.stats()['requests'] == 0
    assert len(sources('email', value)) == 4
    assert catalog_urls(body) == expected_catalog_urls('email', value)
    assert body['data'][0] == search_ref('email', value)


def test_a_whole_first_page_serves_the_next_observe_from_the_cache(make_relay, spycloud):
    relay = make_relay(records_cache_ttl_s=300.0)
    value = 'r6c2@whole.example'
    relay.refer([email(value)])
    spycloud.reset_stats()
    body = relay.observe([email(value)], verdict_days=0)  # no verdict call beside
    assert body['data']['sightings']['count'] == 6
    assert spycloud.stats()['requests'] == 0


@pytest.mark.parametrize(
    'kind,value',
    [('domain', 'r9c2.acme.example'), ('user', 'r6c6'), ('ip', '192.0.2.1')],
)
def test_domains_ips_and_usernames_are_linked_too(relay, spycloud, kind, value):
    body = relay.refer([{'type': kind, 'value': value}])
    assert body['data'][0] == search_ref(kind, value)
    assert catalog_urls(body) == expected_catalog_urls(kind, value)
    assert calls(spycloud)[KINDS[kind]] == 1


def test_unsupported_types_get_no_link_and_no_call(relay, spycloud):
    unsupported = [{'type': 'sha256', 'value': 'ab' * 32}, {'type': 'url', 'value': 'https://a.b/'}]
    assert relay.refer(unsupported) == {'data': []}
    assert relay.refer([]) == {'data': []}
    assert spycloud.stats()['requests'] == 0
    body = relay.refer([*unsupported, email('r2c1@mixed.example')])
    assert {r['id'] for r in body['data']} >= {search_ref('email', 'r2c1@mixed.example')['id']}
    assert all('r2c1' in r['id'] for r in body['data'])


def test_a_bad_token_is_refused_in_the_envelope(relay, spycloud):
    response = relay.post('/refer/observables', [email('r2c1@x.example')], token='garbage')
    assert refused(response)
    assert spycloud.stats()['requests'] == 0


def test_a_body_that_is_no_list_of_observables_is_an_invalid_argument(relay):
    response = relay.post('/refer/observables', {'type': 'email'})
    body = assert_valid_refs(response.json())
    assert [e['code'] for e in body['errors']] == ['invalid argument']


@pytest.mark.parametrize(
    'uuid', ['x)![p](https://evil.example/t.png', 'javascript:alert(1)', '../../admin', 'a b']
)
def test_a_catalog_uuid_that_is_no_uuid_makes_no_catalog_link(relay, spycloud, uuid):
    value = 'r5c2@hostile.example'
    spycloud.catalog_overrides = {i: {'uuid': uuid} for i in sources('email', value)}
    body = relay.refer([email(value)])
    assert body['data'] == [search_ref('email', value)]
    assert not any(uuid in r['url'] for r in body['data'])


def test_ids_are_deterministic_and_distinct_per_observable(make_relay):
    observables = [email('r3c2@one.example'), email('r3c2@two.example')]
    first = make_relay().refer(observables)
    second = make_relay().refer(list(reversed(observables)))
    assert sorted(r['id'] for r in first['data']) == sorted(r['id'] for r in second['data'])
    ids = [r['id'] for r in first['data']]
    links = sum(1 + len(sources('email', o['value'])) for o in observables)
    assert len(set(ids)) == len(ids) == links  # one value's ids are never another's


def test_a_refused_identifier_keeps_its_portal_link_with_a_warning(relay, spycloud):
    spycloud.add_fault(
        403,
        match='refused',
        body={'message': 'User is not authorized to access this resource with an explicit deny'},
    )
    value = 'r3c2@refused.example'
    body = relay.refer([email(value), email('r2c1@allowed.example')])
    assert body['data'][0] == search_ref('email', value)
    assert body['data'][1] == search_ref('email', 'r2c1@allowed.example')
    assert len(catalog_urls(body)) == 1
    (warning,) = body['errors']
    assert warning['type'] == 'warning' and warning['code'] == 'permission denied'


def test_a_failed_lookup_keeps_the_portal_link(relay, spycloud):
    spycloud.add_fault(status=500, match='emails')
    value = 'r3c2@down.example'
    body = relay.refer([email(value)])
    assert body['data'] == [search_ref('email', value)]
    assert [e['type'] for e in body['errors']] == ['fatal']


def test_under_gunicorn_a_repeated_refer_is_served_from_the_cache(gunicorn_relay_server, spycloud):
    """The image's server (gevent worker, records cache on): the first refer asks SpyCloud for
    the first page and the sources, the same refer again asks nothing; each says so in its log
    line."""
    relay = gunicorn_relay_server
    value = 'r7c3@gunicorn-refer.example'
    first = relay.refer([email(value)])
    assert catalog_urls(first) == expected_catalog_urls('email', value)
    assert calls(spycloud) == {'emails': 1, 'catalog': 1}
    again = relay.refer([email(value)])
    assert again == first
    assert calls(spycloud) == {'emails': 1, 'catalog': 1}
    lines = [line for line in relay.log_lines() if line.get('route') == '/refer/observables']
    assert [line['spycloud_calls'] for line in lines[-2:]] == [2, 0]
