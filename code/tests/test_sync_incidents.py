"""The sync's pure middle: records grouped into incidents, the CTIM entities of each incident
(deterministic ids, no secret anywhere, valid CTIM) and the bundles that carry them.

Every date is fixed: nothing here depends on today. Secrets are drawn from an alphabet (Greek
letters) no other generated text uses, so a secret found in an entity is a leak.
"""

import json
import random
import re
from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_X500, uuid5

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spycloud_relay.spycloud.models import BreachRecord, Catalog
from spycloud_relay.sync.bundles import MIN_BUNDLE, PLURALS, bundles
from spycloud_relay.sync.grouping import Group, group
from spycloud_relay.sync.incidents import Entities, IncidentOptions, incident_entities
from support import ENTITIES

pytestmark = pytest.mark.pure
FAST = settings.get_current_profile_name() == 'fast'
PROPERTIES = settings(
    max_examples=20 if FAST else 150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
OPTIONS = IncidentOptions(now=NOW)
DAY = datetime(2024, 2, 1, tzinfo=UTC)
EXTERNAL_ID = re.compile(r'spycloud-relay-(incident|sighting|indicator|relationship)-[0-9a-f]{64}')
CONFIDENCE = {'Info', 'Low', 'Medium', 'High', 'None', 'Unknown'}
SEVERITY = CONFIDENCE | {'Critical'}
STATUS = {'New', 'Open', 'Stalled', 'Containment Achieved', 'Restoration Achieved'}
STATUS |= {'Incident Reported', 'Closed', 'Rejected'}
LIMITS = {'title': 1024, 'short_description': 2048, 'description': 5000, 'source_uri': 2048}

_serial = iter(range(10**9))


def record(days_ago=0, **fields):
    """A watchlist record published ``days_ago`` days before 2024-02-01."""
    raw = {
        'document_id': f'doc-{next(_serial)}',
        'source_id': 70001,
        'spycloud_publish_date': (DAY - timedelta(days=days_ago)).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'severity': 20,
        'email': 'alice@example.org',
    }
    raw.update(fields)
    return BreachRecord.from_api({k: v for k, v in raw.items() if v is not None})


def catalog(catalog_id=70001, **fields):
    raw = {
        'id': catalog_id,
        'uuid': f'00000000-0000-4000-8000-{catalog_id:012d}',
        'title': f'Breach {catalog_id}',
        'description': f'Breach {catalog_id} exposed accounts.',
        'spycloud_publish_date': '2023-12-01T00:00:00Z',
    }
    raw.update(fields)
    return Catalog.from_api(raw)


CATALOGS = {i: catalog(i) for i in (70001, 70002, 70003)}


def entities_of(records, catalogs=CATALOGS, options=OPTIONS):
    return [incident_entities(g, catalogs, options) for g in group(records)]


def every_doc(made):
    for entities in made:
        for plural in PLURALS:
            yield from getattr(entities, plural)


def ids(made, plural):
    return [doc['external_ids'][0] for one in made for doc in getattr(one, plural)]


# -- grouping ----------------------------------------------------------------------------------


def test_one_group_per_account_and_source():
    records = [
        record(1),
        record(2, email='Alice@Example.org'),
        record(3, source_id=70002),
        record(4, email='bob@example.org'),
    ]
    groups = group(records)
    assert [g.key for g in groups] == [
        ('account', 'alice@example.org', '70001'),
        ('account', 'alice@example.org', '70002'),
        ('account', 'bob@example.org', '70001'),
    ]
    assert {g.kind for g in groups} == {'account'}
    assert [r.document_id for r in groups[0].records] == [r.document_id for r in records[:2]]


def test_an_infected_machine_is_one_group_whatever_the_accounts_and_sources():
    stolen = [
        record(1, severity=25, infected_machine_id='M1', email='a@example.org', source_id=70001),
        record(2, severity=25, infected_machine_id='M1', email='b@example.org', source_id=70002),
        record(3, severity=25, email='c@example.org'),  # no machine: an account's
    ]
    groups = group(stolen)
    assert [(g.kind, g.key, len(g.records)) for g in groups] == [
        ('machine', ('machine', 'M1'), 2),
        ('account', ('account', 'c@example.org', '70001'), 1),
    ]


def test_sessions_stolen_are_an_incident_of_their_own():
    records = [
        record(1, severity=30, infected_machine_id='M1'),
        record(2, severity=26, infected_machine_id='M1'),
        record(3, severity=25, infected_machine_id='M1'),
        record(4, severity=26),  # no machine: keyed by the account
    ]
    groups = group(records)
    assert [(g.kind, g.key, len(g.records)) for g in groups] == [
        ('session', ('session', 'M1'), 2),
        ('machine', ('machine', 'M1'), 1),
        ('session', ('session', 'alice@example.org'), 1),
    ]


def test_the_account_is_the_email_else_the_username_else_the_ip():
    records = [
        record(1, email=None, username='alice'),
        record(2, email=None, ip_addresses=['192.0.2.7']),
        record(3, email=None),
    ]
    keys = [g.key[1] for g in group(records)]
    assert keys == ['alice', '192.0.2.7', f'record {records[2].document_id}']


def test_groups_and_their_records_are_newest_first_in_any_input_order():
    records = [record(days, email=f'{days % 3}@example.org') for days in range(12)]
    changed = '2024-02-05T00:00:00Z'
    records.append(record(0, email='2@example.org', record_modification_date=changed))
    expected = group(records)
    assert [g.records[0].published for g in expected] == sorted(
        (g.records[0].published for g in expected), reverse=True
    )
    for one in expected:
        published = [r.published for r in one.records]
        assert published == sorted(published, reverse=True)
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    assert group(shuffled) == expected


# -- ids ---------------------------------------------------------------------------------------


def test_external_ids_are_deterministic_and_transient_ids_derive_from_them():
    records = [record(1), record(2, severity=25, infected_machine_id='M1', source_id=70002)]
    first, second = entities_of(records), entities_of(list(reversed(records)))
    assert json.dumps([vars(e) for e in first]) == json.dumps([vars(e) for e in second])
    for doc in every_doc(first):
        external = doc['external_ids'][0]
        assert EXTERNAL_ID.fullmatch(external), external
        assert external.split('-')[2] == doc['type']
        assert doc['id'] == f'transient:{doc["type"]}-{uuid5(NAMESPACE_X500, external)}'


def test_a_modified_record_is_a_new_sighting_of_the_same_incident():
    original = record(1, document_id='doc-x', record_modification_date='2024-02-01T00:00:00Z')
    modified = record(1, document_id='doc-x', record_modification_date='2024-02-09T10:00:00Z')
    before, after = entities_of([original]), entities_of([modified])
    assert ids(before, 'incidents') == ids(after, 'incidents')
    assert ids(before, 'indicators') == ids(after, 'indicators')
    assert ids(before, 'sightings') != ids(after, 'sightings')
    assert not set(ids(before, 'relationships')) & set(ids(after, 'relationships'))


def test_the_same_group_is_the_same_incident_on_two_runs():
    """A later run (another moment, more records of the group) names the incident the same."""
    old = record(3)
    first = entities_of([old])
    later = entities_of([old, record(0)], options=IncidentOptions(now=NOW + timedelta(days=2)))
    assert ids(first, 'incidents') == ids(later, 'incidents')
    assert first[0].incidents[0]['id'] == later[0].incidents[0]['id']
    assert set(ids(first, 'sightings')) < set(ids(later, 'sightings'))


def test_the_prefix_is_the_operators():
    options = IncidentOptions(now=NOW, external_id_prefix='acme-sync')
    made = entities_of([record(1)], options=options)
    assert all(doc['external_ids'][0].startswith('acme-sync-') for doc in every_doc(made))


def test_sightings_join_their_incident_and_their_source():
    made = entities_of(
        [
            record(1, severity=25, infected_machine_id='M1'),
            record(2, severity=25, infected_machine_id='M1', source_id=99999),
        ]
    )[0]
    incident = made.incidents[0]['id']
    links = {(r['relationship_type'], r['source_ref'], r['target_ref']) for r in made.relationships}
    for seen in made.sightings:
        assert ('member-of', seen['id'], incident) in links
    indicator = made.indicators[0]['id']
    assert [s for (kind, s, t) in links if kind == 'sighting-of'] == [made.sightings[0]['id']]
    assert ('sighting-of', made.sightings[0]['id'], indicator) in links  # 99999: no catalog
    assert len(made.relationships) == 3


# -- the incident as a person reads it ---------------------------------------------------------


def test_titles_say_who_what_and_where():
    account = entities_of([record(1)])[0].incidents[0]
    assert account['title'] == 'alice@example.org: password exposed in Breach 70001'
    apps = ['login.example.net', 'mail.example.com', 'shop.example', 'bank.example']
    machine = entities_of(
        [
            record(
                i,
                severity=25,
                infected_machine_id='M1',
                user_hostname='DESKTOP-7Q',
                target_domain=app,
            )
            for i, app in enumerate(apps)
        ]
    )[0].incidents[0]
    assert machine['title'] == (
        'Infostealer on DESKTOP-7Q / alice@example.org: 4 credentials stolen '
        '(login.example.net, mail.example.com, shop.example, ...)'
    )
    stolen = record(1, severity=30, cookie_domain='mail.example.com')
    session = entities_of([stolen])[0].incidents[0]
    assert session['title'] == 'Session cookies stolen from alice@example.org (mail.example.com)'


@pytest.mark.parametrize(
    ('severities', 'expected'),
    [
        ((2,), 'Low'),
        ((5, 2), 'Medium'),
        ((20, 5), 'High'),
        ((25,), 'High'),
        ((26,), 'Critical'),
        ((30,), 'Critical'),
    ],
)
def test_the_incident_takes_the_highest_severity(severities, expected):
    records = [record(i, severity=score) for i, score in enumerate(severities)]
    assert entities_of(records)[0].incidents[0]['severity'] == expected


def test_the_description_says_what_to_do():
    def advice(records):
        return entities_of(records)[0].incidents[0]['description'].split('**What to do**')[1]

    reset = advice([record(1)])
    assert 'Reset the password of alice@example.org' in reset and 'sessions' not in reset
    assert 'Revoke the active sessions' in advice([record(1, severity=26)])
    machine = advice([record(1, severity=25, infected_machine_id='M1', user_hostname='PC-1')])
    assert 'Isolate and re-image PC-1 / alice@example.org' in machine


def test_the_incident_names_its_source_and_time():
    incident = entities_of([record(5), record(1)])[0].incidents[0]
    portal = 'https://portal.spycloud.com/breach/catalog/00000000-0000-4000-8000-000000070001'
    assert incident['source_uri'] == portal
    assert f'[Breach 70001]({portal})' in incident['description']
    assert incident['incident_time'] == {
        'opened': '2024-03-01T12:00:00.000Z',
        'discovered': '2024-01-27T00:00:00.000Z',
    }
    assert (incident['confidence'], incident['status'], incident['tlp']) == ('High', 'New', 'amber')
    assert (
        'SpyCloud published 2 records of this exposure (2024-01-27 to 2024-01-31)'
        in (incident['description'])
    )


def test_spycloud_strings_are_text_in_the_description():
    hostile = catalog(70001, title='[click](javascript:alert(1)) <img src=x onerror=alert(1)>')
    incident = entities_of([record(1)], catalogs={70001: hostile})[0].incidents[0]
    assert '](javascript' not in incident['description']
    assert not re.search(r'(?<!\\)<img', incident['description'])
    assert '\\[click\\]\\(javascript\\:alert\\(1\\)\\)' in incident['description']


def test_a_machine_with_many_credentials_fits_ctim_limits():
    records = [
        record(
            i % 30,
            severity=25,
            infected_machine_id='M' * 300,
            user_hostname='H' * 500,
            target_domain=f'{"x" * 200}{i}.example',
            source_id=70001 + i % 3,
        )
        for i in range(400)
    ]
    made = entities_of(records)
    incident = made[0].incidents[0]
    assert_valid_incident(incident)
    assert len(made[0].sightings) == 400
    assert re.search(r'\.\.\. and \d+ more\.', incident['description'])


# -- CTIM --------------------------------------------------------------------------------------


def assert_valid_incident(doc):
    """CTIM's required fields, its vocabularies and string limits, and IROH's contract."""
    required = {'type', 'id', 'schema_version', 'confidence', 'status', 'incident_time'}
    assert required <= set(doc), required - set(doc)
    assert doc['type'] == 'incident'
    assert doc['confidence'] in CONFIDENCE and doc['status'] in STATUS
    assert doc.get('severity', 'Unknown') in SEVERITY
    assert doc.get('tlp', 'amber') in {'white', 'green', 'amber', 'red'}
    datetime.fromisoformat(doc['incident_time']['opened'].replace('Z', '+00:00'))
    for name, limit in LIMITS.items():
        assert len(doc.get(name, '')) <= limit, name
    ENTITIES['Incident'].validate(doc)


def assert_valid_entities(made):
    for one in made:
        assert len(one.incidents) == 1
        assert_valid_incident(one.incidents[0])
        for plural, name in (
            ('sightings', 'Sighting'),
            ('indicators', 'Indicator'),
            ('relationships', 'Relationship'),
        ):
            for doc in getattr(one, plural):
                ENTITIES[name].validate(doc)
                assert doc['tlp'] == OPTIONS.tlp
        json.dumps(vars(one), allow_nan=False)


SECRET_ALPHABET = 'αβγδεζηθικλμνξοπρστυφχψω'
SECRETS = st.text(SECRET_ALPHABET, min_size=8, max_size=24)
OTHERS = st.characters(exclude_characters=SECRET_ALPHABET + SECRET_ALPHABET.upper())
PLAIN = st.text(OTHERS, max_size=20)
SECRET_FIELDS = (
    'password',
    'password_plaintext',
    'salt',
    'cookie_value',
    'session_token',
    'access_token',
)


@st.composite
def records_with_secrets(draw):
    """Records of any severity and shape, each holding secrets where SpyCloud puts them (and a
    token in a URL, a password in a URL's user part, a token nested in an object)."""
    secrets = []
    made = []
    for index in range(draw(st.integers(1, 8))):
        secret = {name: draw(SECRETS) for name in draw(st.sets(st.sampled_from(SECRET_FIELDS)))}
        in_url, nested = draw(SECRETS), draw(SECRETS)
        secrets += [*secret.values(), in_url, nested]
        raw = {
            'document_id': f'd{index}',
            'source_id': draw(st.sampled_from([70001, 70002, 70003, 12345, None])),
            'spycloud_publish_date': f'2024-01-{draw(st.integers(1, 28)):02d}T00:00:00Z',
            'severity': draw(st.sampled_from([2, 5, 20, 25, 26, 30, None, 99])),
            'email': draw(st.sampled_from(['a@example.org', 'b@example.org', None])),
            'username': draw(st.one_of(st.none(), PLAIN)),
            'infected_machine_id': draw(st.sampled_from(['M1', 'M2', None])),
            'user_hostname': draw(st.one_of(st.none(), PLAIN)),
            'target_url': f'https://u:{in_url}@login.example.net/reset?token={in_url}',
            'extra': {'auth_token': nested, 'note': draw(PLAIN)},
            'cookie_name': draw(PLAIN),
            **secret,
        }
        made.append(BreachRecord.from_api({k: v for k, v in raw.items() if v is not None}))
    return made, secrets


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@PROPERTIES
@given(records_with_secrets(), st.integers(MIN_BUNDLE, 40))
def test_no_secret_reaches_any_entity_and_every_entity_is_valid_ctim(drawn, size):
    records, secrets = drawn
    made = entities_of(records)
    assert_valid_entities(made)
    sent = bundles(made, 'SpyCloud', size)
    every = [text.replace('\\', '') for text in strings([vars(e) for e in made] + sent)]
    for secret in secrets:
        assert not any(secret in text for text in every), 'a secret reached an entity'


# -- bundles -----------------------------------------------------------------------------------


def assert_well_formed(sent, made, size):
    for bundle in sent:
        assert set(bundle) == {'type', 'source', *PLURALS} and bundle['type'] == 'bundle'
        held = [doc['id'] for plural in PLURALS for doc in bundle[plural]]
        assert len(held) == len(set(held)) <= size
        for link in bundle['relationships']:
            assert {link['source_ref'], link['target_ref']} <= set(held)
    carried = {doc['id'] for bundle in sent for plural in PLURALS for doc in bundle[plural]}
    assert carried == {doc['id'] for doc in every_doc(made)}


def machine(name, count, days_ago=0):
    return [
        record(days_ago, severity=25, infected_machine_id=name, source_id=70001 + i % 3)
        for i in range(count)
    ]


def test_incidents_that_fit_stay_whole():
    made = entities_of(machine('A', 3, 1) + machine('B', 3, 2) + machine('C', 3, 3))
    sizes = [sum(len(getattr(e, p)) for p in PLURALS) for e in made]  # 1 + 3 + 3 + 6 = 13
    assert sizes == [13, 13, 13]
    sent = bundles(made, 'SpyCloud', 30)
    assert_well_formed(sent, made, 30)
    assert [len(b['incidents']) for b in sent] == [2, 1]


def test_an_incident_bigger_than_a_bundle_is_spread_with_the_incident_repeated():
    made = entities_of(machine('A', 50))
    sent = bundles(made, 'SpyCloud', 20)
    assert_well_formed(sent, made, 20)
    assert len(sent) > 1
    incident = made[0].incidents[0]
    assert all(bundle['incidents'] == [incident] for bundle in sent)
    assert sum(len(b['sightings']) for b in sent) == 50


def test_a_bundle_too_small_for_a_sighting_is_refused():
    with pytest.raises(ValueError, match='at least 5'):
        bundles(entities_of(machine('A', 1)), 'SpyCloud', MIN_BUNDLE - 1)


@PROPERTIES
@given(st.lists(st.integers(1, 30), min_size=1, max_size=8), st.integers(MIN_BUNDLE, 60))
def test_bundles_hold_at_most_the_limit_and_both_ends_of_every_relationship(counts, size):
    records = [r for i, count in enumerate(counts) for r in machine(f'M{i}', count, i)]
    made = entities_of(records)
    sent = bundles(made, 'SpyCloud', size)
    assert_well_formed(sent, made, size)


def test_no_entities_no_bundle():
    assert bundles([], 'SpyCloud', 1000) == []
    assert bundles([Entities()], 'SpyCloud', 1000) == []


def test_group_is_a_frozen_value():
    one = Group(key=('account', 'a', '1'), kind='account', records=())
    with pytest.raises(AttributeError):
        one.kind = 'machine'
