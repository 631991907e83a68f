"""XdrSimulator answers as IROH's token endpoint and CTIA's bundle import do, over real sockets."""

import signal
import threading
import time

import pytest
import requests

from simulator import DEFAULT_XDR_CLIENT
from simulator.xdr import IMPORT_PATH, TOKEN_PATH
from support import simulator_process

TIMEOUT = 5
PREFIX = 'spycloud-relay'


def token(xdr, client=DEFAULT_XDR_CLIENT, grant='client_credentials'):
    return requests.post(
        xdr.url + TOKEN_PATH,
        auth=client,
        data={'grant_type': grant},
        headers={'Accept': 'application/json'},
        timeout=TIMEOUT,
    )


def bearer(xdr):
    return token(xdr).json()['access_token']


def post_bundle(xdr, bundle, access=None, prefixes=PREFIX):
    access = access or bearer(xdr)
    return requests.post(
        xdr.url + IMPORT_PATH,
        params={'external-key-prefixes': prefixes} if prefixes else None,
        json=bundle,
        headers={'Authorization': f'Bearer {access}'},
        timeout=TIMEOUT,
    )


def results(xdr, bundle, **kw):
    response = post_bundle(xdr, bundle, **kw)
    assert response.status_code == 200, response.text
    return response.json()['results']


def incident(name, **fields):
    return {
        'id': f'transient:incident-{name}',
        'type': 'incident',
        'schema_version': '1.3.29',
        'confidence': 'High',
        'status': 'New',
        'incident_time': {'opened': '2024-12-03T00:00:00.000Z'},
        'severity': 'High',
        'tlp': 'amber',
        'title': f'incident {name}',
        'external_ids': [f'{PREFIX}-incident-{name}'],
        **fields,
    }


def sighting(name, **fields):
    return {
        'id': f'transient:sighting-{name}',
        'type': 'sighting',
        'schema_version': '1.0.17',
        'source': 'SpyCloud',
        'confidence': 'High',
        'count': 1,
        'internal': False,
        'observed_time': {
            'start_time': '2024-12-03T00:00:00.000Z',
            'end_time': '2024-12-03T00:00:00.000Z',
        },
        'observables': [{'type': 'email', 'value': 'alice@example.org'}],
        'targets': [
            {
                'type': 'email',
                'observables': [{'type': 'email', 'value': 'alice@example.org'}],
                'observed_time': {'start_time': '2024-12-03T00:00:00.000Z'},
            }
        ],
        'relations': [
            {
                'origin': 'SpyCloud',
                'relation': 'Leaked_From',
                'source': {'type': 'email', 'value': 'alice@example.org'},
                'related': {'type': 'domain', 'value': 'example.org'},
            }
        ],
        'data': {'columns': [{'name': 'Password', 'type': 'string'}], 'rows': [['****']]},
        'severity': 'High',
        'external_ids': [f'{PREFIX}-sighting-{name}'],
        **fields,
    }


def indicator(name, **fields):
    return {
        'id': f'transient:indicator-{name}',
        'type': 'indicator',
        'schema_version': '1.0.17',
        'producer': 'SpyCloud',
        'valid_time': {'start_time': '2024-12-01T00:00:00.000Z'},
        'confidence': 'High',
        'title': f'breach {name}',
        'external_ids': [f'{PREFIX}-indicator-{name}'],
        **fields,
    }


def relationship(kind, source, target, **fields):
    return {
        'id': f'transient:relationship-{kind}-{source}-{target}',
        'type': 'relationship',
        'schema_version': '1.0.17',
        'relationship_type': kind,
        'source_ref': source,
        'target_ref': target,
        'external_ids': [f'{PREFIX}-relationship-{kind}-{source}-{target}'],
        **fields,
    }


def full_bundle(name='a'):
    s, i = f'transient:sighting-{name}', f'transient:incident-{name}'
    n = f'transient:indicator-{name}'
    return {
        'type': 'bundle',
        'source': 'SpyCloud',
        'incidents': [incident(name)],
        'sightings': [sighting(name)],
        'indicators': [indicator(name)],
        'relationships': [relationship('member-of', s, i), relationship('sighting-of', s, n)],
    }


# -- token -----------------------------------------------------------------------------------


def test_a_known_client_gets_a_600_s_bearer_token(xdr):
    response = token(xdr)
    assert response.status_code == 200
    body = response.json()
    assert body['token_type'] == 'bearer' and body['expires_in'] == 600
    assert body['access_token'] and body['scope']
    assert xdr.request_log[-1]['client_id'] == DEFAULT_XDR_CLIENT[0]


@pytest.mark.parametrize(
    'client',
    [(DEFAULT_XDR_CLIENT[0], 'wrong-password'), ('unknown-client', DEFAULT_XDR_CLIENT[1])],
)
def test_an_unknown_client_or_a_wrong_password_is_401(xdr, client):
    response = token(xdr, client)
    assert response.status_code == 401
    assert response.json() == {'error': 'invalid_client'}


def test_a_token_request_without_basic_auth_is_401(xdr):
    response = requests.post(
        xdr.url + TOKEN_PATH, data={'grant_type': 'client_credentials'}, timeout=TIMEOUT
    )
    assert response.status_code == 401


def test_another_grant_type_is_400(xdr):
    response = token(xdr, grant='password')
    assert response.status_code == 400
    assert response.json() == {'error': 'unsupported_grant_type'}


def test_token_ttl_is_a_knob_and_a_token_past_it_is_401(xdr):
    xdr.token_ttl = 0.2
    access = bearer(xdr)
    assert xdr.request_log[-1]['status'] == 200
    assert post_bundle(xdr, full_bundle(), access).status_code == 200
    time.sleep(0.3)  # a lower bound only: the token's TTL has passed
    assert post_bundle(xdr, full_bundle('b'), access).status_code == 401


def test_expire_tokens_ends_every_token_issued(xdr):
    access = bearer(xdr)
    xdr.expire_tokens()
    response = post_bundle(xdr, full_bundle(), access)
    assert response.status_code == 401
    assert response.json()['error'] == 'invalid_token'
    assert post_bundle(xdr, full_bundle()).status_code == 200  # a new token works


@pytest.mark.parametrize('header', ['', 'Bearer', 'Bearer not-a-token', 'Basic abc'])
def test_an_import_without_a_valid_bearer_token_is_401(xdr, header):
    response = requests.post(
        xdr.url + IMPORT_PATH,
        json=full_bundle(),
        headers={'Authorization': header} if header else {},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert xdr.entities('incident') == []


def test_other_paths_are_404(xdr):
    response = requests.get(xdr.url + IMPORT_PATH, timeout=TIMEOUT)
    assert response.status_code == 404
    assert xdr.request_log[-1]['endpoint'] == 'other'


# -- import: results and de-duplication ------------------------------------------------------


def test_a_bundle_is_created_with_one_result_per_entity(xdr):
    got = results(xdr, full_bundle())
    assert [(r['type'], r['result']) for r in got] == [
        ('incident', 'created'),
        ('sighting', 'created'),
        ('indicator', 'created'),
        ('relationship', 'created'),
        ('relationship', 'created'),
    ]
    assert got[0]['original_id'] == 'transient:incident-a'
    assert got[0]['id'].startswith(f'{xdr.url}/ctia/incident/incident-')
    assert got[0]['external_ids'] == [f'{PREFIX}-incident-a']
    assert [len(xdr.entities(kind)) for kind in ('incident', 'sightings', 'indicator')] == [1] * 3


def test_relationships_point_at_the_stored_ids(xdr):
    got = {r['original_id']: r['id'] for r in results(xdr, full_bundle())}
    member = next(r for r in xdr.entities('relationship') if r['relationship_type'] == 'member-of')
    assert member['source_ref'] == got['transient:sighting-a']
    assert member['target_ref'] == got['transient:incident-a']


def test_a_reimport_exists_and_leaves_the_stored_entity_unchanged(xdr):
    first = results(xdr, full_bundle())
    stored = xdr.entities('incident')
    changed = full_bundle()
    changed['incidents'][0]['title'] = 'a new title'
    second = results(xdr, changed)
    assert [r['result'] for r in second] == ['exists'] * 5
    assert [r['id'] for r in second] == [r['id'] for r in first]
    assert xdr.entities('incident') == stored  # the title was not changed
    assert len(xdr.entities('relationship')) == 2


def test_transient_ids_map_onto_the_stored_entity(xdr):
    """A new sighting of a known incident attaches to the stored incident."""
    incident_id = results(xdr, full_bundle())[0]['id']
    bundle = full_bundle()
    bundle['incidents'][0]['id'] = 'transient:incident-other-transient'
    bundle['sightings'] = [sighting('second')]
    bundle['relationships'] = [
        relationship('member-of', 'transient:sighting-second', 'transient:incident-other-transient')
    ]
    bundle['indicators'] = []
    got = results(xdr, bundle)
    assert [r['result'] for r in got] == ['exists', 'created', 'created']
    assert got[0]['id'] == incident_id
    new = [r for r in xdr.entities('relationship') if r['id'] == got[2]['id']]
    assert new[0]['target_ref'] == incident_id
    assert len(xdr.entities('incident')) == 1 and len(xdr.entities('sighting')) == 2


def test_only_external_ids_under_a_listed_prefix_count(xdr):
    results(xdr, full_bundle())
    got = results(xdr, full_bundle(), prefixes='another-prefix')
    assert {r['result'] for r in got} == {'created'}
    assert len(xdr.entities('incident')) == 2


def test_several_prefixes_may_be_listed(xdr):
    results(xdr, full_bundle())
    got = results(xdr, full_bundle(), prefixes=f'another-prefix,{PREFIX}')
    assert {r['result'] for r in got} == {'exists'}


def test_entities_without_external_ids_are_created_every_time(xdr):
    bundle = {'type': 'bundle', 'incidents': [incident('plain', external_ids=[])]}
    first, second = results(xdr, bundle), results(xdr, bundle)
    assert first[0]['result'] == second[0]['result'] == 'created'
    assert first[0]['id'] != second[0]['id']
    assert len(xdr.entities('incident')) == 2


def test_an_external_id_is_looked_up_in_the_store_as_before_the_bundle(xdr):
    """As CTIA: two entities of one bundle with one external id are both created."""
    bundle = {'type': 'bundle', 'incidents': [incident('twice'), incident('twice')]}
    assert [r['result'] for r in results(xdr, bundle)] == ['created', 'created']
    assert [r['result'] for r in results(xdr, bundle)] == ['exists', 'exists']


def test_one_type_does_not_match_another_with_the_same_external_id(xdr):
    shared = ['spycloud-relay-1']
    results(xdr, {'type': 'bundle', 'incidents': [incident('x', external_ids=shared)]})
    got = results(
        xdr, {'type': 'bundle', 'indicators': [indicator('x', external_ids=['spycloud-relay-1'])]}
    )
    assert got[0]['result'] == 'created'


# -- import: validation ----------------------------------------------------------------------

INVALID = [
    ('incidents', incident('bad', confidence='Very high')),
    ('incidents', incident('bad', status='Triage')),
    ('incidents', incident('bad', severity='Severe')),
    ('incidents', incident('bad', tlp='blue')),
    ('incidents', incident('bad', incident_time={'closed': '2024-12-03T00:00:00Z'})),
    ('incidents', incident('bad', incident_time={'opened': 'yesterday'})),
    ('incidents', incident('bad', schema_version='one')),
    ('incidents', incident('bad', type='sighting')),
    ('incidents', incident('bad', custom_field='x')),
    ('incidents', {k: v for k, v in incident('bad').items() if k != 'status'}),
    ('sightings', sighting('bad', count=-1)),
    ('sightings', sighting('bad', observables=[{'type': 'password', 'value': 'x'}])),
    ('sightings', sighting('bad', observed_time={})),
    ('sightings', sighting('bad', data={'columns': [{'name': 'a', 'type': 'text'}], 'rows': []})),
    ('sightings', sighting('bad', data={'columns': [{'name': 'a', 'type': 'url'}], 'rows': [[]]})),
    ('sightings', {k: v for k, v in sighting('bad').items() if k != 'confidence'}),
    ('indicators', {k: v for k, v in indicator('bad').items() if k != 'producer'}),
    ('indicators', indicator('bad', indicator_type=['Leaked Password'])),
    ('indicators', indicator('bad', title='x' * 1025)),
    ('relationships', relationship('member-of', 'transient:nowhere', 'transient:incident-a')),
    ('relationships', {**relationship('member-of', 'a', 'b'), 'relationship_type': ''}),
]


@pytest.mark.parametrize(('key', 'entity'), INVALID)
def test_an_invalid_entity_is_an_error_result_for_itself_only(xdr, key, entity):
    bundle = full_bundle()
    bundle[key] = [*bundle.get(key, []), entity]
    got = results(xdr, bundle)
    errors = [r for r in got if r['result'] == 'error']
    assert len(errors) == 1 and errors[0]['original_id'] == entity['id']
    assert errors[0]['error'] and errors[0]['msg']
    assert sum(r['result'] == 'created' for r in got) == 5
    assert all(entity['id'] != e['id'] for e in xdr.entities(key))


def test_a_relationship_to_an_entity_in_error_does_not_resolve(xdr):
    bundle = full_bundle()
    bundle['incidents'] = [incident('a', status='Triage')]
    got = {r['original_id']: r for r in results(xdr, bundle)}
    member = got['transient:relationship-member-of-transient:sighting-a-transient:incident-a']
    assert member['result'] == 'error' and 'target_ref' in member['msg']
    assert (
        got['transient:relationship-sighting-of-transient:sighting-a-transient:indicator-a'][
            'result'
        ]
        == 'created'
    )


def test_a_relationship_may_point_at_a_stored_entity_by_its_id(xdr):
    incident_id = results(xdr, full_bundle())[0]['id']
    bundle = {
        'type': 'bundle',
        'sightings': [sighting('late')],
        'relationships': [relationship('member-of', 'transient:sighting-late', incident_id)],
    }
    assert [r['result'] for r in results(xdr, bundle)] == ['created', 'created']


@pytest.mark.parametrize('status', ['New', 'Open', 'Closed', 'Containment Achieved'])
def test_the_status_vocabulary_is_accepted(xdr, status):
    got = results(xdr, {'type': 'bundle', 'incidents': [incident(status, status=status)]})
    assert got[0]['result'] == 'created'


@pytest.mark.parametrize('severity', ['Info', 'Low', 'Medium', 'High', 'Critical', 'None'])
def test_the_severity_vocabulary_is_accepted(xdr, severity):
    got = results(xdr, {'type': 'bundle', 'incidents': [incident(severity, severity=severity)]})
    assert got[0]['result'] == 'created'


# -- import: whole-bundle refusals -----------------------------------------------------------


def test_a_bundle_over_the_entity_limit_is_400_and_stores_nothing(xdr):
    xdr.entity_limit = 4
    response = post_bundle(xdr, full_bundle())
    assert response.status_code == 400
    assert '5 > 4' in response.json()['error']
    assert xdr.entities('incident') == [] and xdr.request_log[-1]['entities'] == 5
    xdr.entity_limit = 5
    assert post_bundle(xdr, full_bundle()).status_code == 200


def test_the_default_entity_limit_is_2000(xdr):
    bundle = {'type': 'bundle', 'incidents': [incident(str(n)) for n in range(2001)]}
    response = post_bundle(xdr, bundle)
    assert response.status_code == 400
    assert xdr.entities('incident') == []


@pytest.mark.parametrize(
    'body',
    [b'not json', b'[]', b'{"type": "incident"}', b'{"incidents": {}}', b'{"x": []}'],
)
def test_a_body_that_is_no_bundle_is_400(xdr, body):
    response = requests.post(
        xdr.url + IMPORT_PATH,
        data=body,
        headers={'Authorization': f'Bearer {bearer(xdr)}', 'Content-Type': 'application/json'},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400


# -- faults, log, reset ----------------------------------------------------------------------


def test_throttle_answers_429_with_retry_after_then_serves(xdr):
    access = bearer(xdr)
    fault = xdr.throttle(retry_after=3, match='bundle/import')
    first = post_bundle(xdr, full_bundle(), access)
    assert first.status_code == 429
    assert first.headers['Retry-After'] == '3' and first.headers['X-Ratelimit-Org-Limit']
    assert post_bundle(xdr, full_bundle(), access).status_code == 200
    assert fault.hits == 1
    assert [e['status'] for e in xdr.request_log] == [200, 429, 200]


def test_a_5xx_fault_on_the_token_endpoint(xdr):
    xdr.add_fault(503, match='oauth2/token', times=2)
    assert [token(xdr).status_code for _ in range(3)] == [503, 503, 200]


def test_a_reset_fault_drops_the_connection(xdr):
    xdr.add_fault(mode='reset', times=1, match='bundle/import')
    access = bearer(xdr)
    with pytest.raises(requests.ConnectionError):
        post_bundle(xdr, full_bundle(), access)
    assert post_bundle(xdr, full_bundle(), access).status_code == 200


def test_the_request_log_names_each_exchange(xdr):
    access = bearer(xdr)
    post_bundle(xdr, full_bundle(), access)
    log = xdr.request_log
    assert [e['endpoint'] for e in log] == ['token', 'import']
    assert log[1]['query'] == {'external-key-prefixes': [PREFIX]}
    assert log[1]['token'] == access and log[1]['client_id'] == DEFAULT_XDR_CLIENT[0]
    assert log[1]['entities'] == 5 and log[1]['status'] == 200
    assert xdr.count('import') == 1 and xdr.count('token') == 1


def test_reset_empties_the_store_and_forgets_tokens_and_knobs(xdr):
    access = bearer(xdr)
    results(xdr, full_bundle(), access=access)
    xdr.entity_limit, xdr.token_ttl = 1, 5
    xdr.throttle(times=None)
    xdr.reset()
    assert xdr.entities('incident') == [] and xdr.request_log == []
    assert (xdr.entity_limit, xdr.token_ttl) == (2000, 600.0)
    assert post_bundle(xdr, full_bundle(), access).status_code == 401
    assert post_bundle(xdr, full_bundle()).status_code == 200


def test_concurrent_imports_of_one_bundle_store_each_entity_once_per_request(xdr):
    access = bearer(xdr)
    statuses = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(post_bundle(xdr, full_bundle(), access).status_code)
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    assert len(xdr.entities('incident')) == 1  # each import saw the ones before it


# -- command line ----------------------------------------------------------------------------


def test_the_command_line_serves_the_fake_xdr_with_xdr_port(tmp_path):
    with simulator_process('--xdr-port', '0', '--state-dir', str(tmp_path)) as (proc, info):
        client = (info['xdr_client_id'], info['xdr_client_password'])
        assert client == DEFAULT_XDR_CLIENT
        response = requests.post(
            info['xdr_url'] + TOKEN_PATH,
            auth=client,
            data={'grant_type': 'client_credentials'},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200 and response.json()['expires_in'] == 600
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
