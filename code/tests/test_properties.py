"""Properties of the mapping, for any record and catalog SpyCloud could send.

A raw breach record or catalog (missing fields, wrong types, nulls, huge strings, unicode,
dates in other formats, unknown severities, odd ``sighting`` counts, odd assets, sites that are
URLs, addresses or garbage) is either refused by ``from_api`` with MalformedData, or maps to
CTIM that XDR's contract accepts, as strict JSON. With the default options no secret (password,
plaintext, salt) reaches the answer; with any options no session secret (a cookie's name or value,
a session id, a token, nested or not) and no secret nested in another field does.

Secrets are drawn from an alphabet (Greek letters) that no other generated text uses, so a
secret found in the answer is a leak, not a coincidence.
"""

import json
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spycloud_relay.ctim.bundle import Bundle
from spycloud_relay.ctim.mapping import MappingOptions, exposure_entities, indicator, sighting
from spycloud_relay.spycloud.client import PAGE_ENDPOINTS
from spycloud_relay.spycloud.compass import summarise
from spycloud_relay.spycloud.models import (
    BreachRecord,
    Catalog,
    Exposure,
    MalformedData,
    Observable,
    parse_time,
)
from support import BUNDLE

pytestmark = pytest.mark.pure
# `make test-fast` runs Hypothesis's `fast` profile (tests/conftest.py): a tenth of the examples.
FAST = settings.get_current_profile_name() == 'fast'
PROPERTIES = settings(
    max_examples=20 if FAST else 200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALLER = settings(PROPERTIES, max_examples=10 if FAST else 100)  # also exercised above
SECRET_ALPHABET = 'αβγδεζηθικλμνξοπρστυφχψω'
SECRET_FIELDS = ('password', 'password_plaintext', 'salt')  # shown when the module asks
NEVER_SHOWN = ('cookie_value', 'cookie_name', 'session_id', 'access_token', 'log_data')
INT64 = (-(2**63), 2**63 - 1)

# -- building blocks --------------------------------------------------------------------------

CHARACTERS = st.characters(exclude_characters=SECRET_ALPHABET + SECRET_ALPHABET.upper())
TEXT = st.text(CHARACTERS, max_size=30)
HUGE_TEXT = st.builds(
    lambda piece, times: piece * times,
    st.text(CHARACTERS, min_size=1, max_size=3),
    st.integers(1000, 5000),
)
ANY_TEXT = st.one_of(TEXT, TEXT, HUGE_TEXT, st.sampled_from(['', ' ', 'n/a', '()', '\x00']))
NUMBERS = st.one_of(
    st.integers(),
    st.integers(-10, 100),
    st.integers(2**62, 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_TEXT)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
NUMERIC_TEXT = st.one_of(
    st.integers().map(str),
    st.integers().map(lambda n: f'  {n} '),
    st.sampled_from(['²', '--5', '+7', '1_000', '١٢٣', '0x1F', '12.0', '9' * 5000, '-']),
)
INTISH = st.one_of(st.integers(), st.integers(16000, 68000), NUMERIC_TEXT, JSON)


def offsets():
    return st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )


MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59),
    timezones=st.one_of(st.none(), st.just(UTC), offsets()),
)
DATE_FORMATS = [
    lambda m: m.replace(tzinfo=None).strftime('%Y-%m-%dT%H:%M:%SZ'),
    lambda m: m.isoformat(),
    lambda m: m.isoformat(sep=' ', timespec='seconds'),
    lambda m: m.date().isoformat(),
    lambda m: m.strftime('%Y/%m/%d'),
    lambda m: m.strftime('%d.%m.%Y %H:%M'),
    lambda m: m.replace(tzinfo=None).isoformat() + 'z',
    lambda m: str(int(m.replace(tzinfo=UTC).timestamp())),
]
DATES = st.one_of(
    st.builds(lambda moment, form: form(moment), MOMENTS, st.sampled_from(DATE_FORMATS)),
    st.sampled_from(
        [
            '2020-01-09T00:00:00Z',
            '2020-01-09 00:00:00',
            '0001-01-01T00:00:00Z',
            '9999-12-31T23:59:59-05:00',
            '0001-01-01T00:00:00+05:00',
            '2020-13-45',
            'yesterday',
            '',
            '2020-01-09T00:00:00+05:00Z',
        ]
    ),
    JSON,
)
SITES = st.one_of(
    st.sampled_from(
        [
            'n/a',
            'N/A',
            'example.com',
            'EXAMPLE.COM.',
            'breach-1.example',
            'https://example.com/login',
            'http://10.0.0.1:8080',
            '127.0.0.1:8000',
            '192.0.2.10',
            '[2001:db8::1]',
            'xn--bcher-kva.example',
            'bücher.example',
            'a..b',
            '-bad-.example',
            'localhost',
            'ex ample.com',
            '*.example.com',
        ]
    ),
    st.from_regex(r'\A[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){1,3}\Z'),
    st.from_regex(r'\A([a-z][a-z0-9]{0,9}\.){1,2}(com|org|example)\Z'),
    ANY_TEXT,
    JSON,
)


def secrets():
    """Something to hide: mostly a string of 6+ secret letters, sometimes a short one, a
    list or an object holding secrets, or a value of another type."""
    word = st.text(SECRET_ALPHABET, min_size=6, max_size=40)
    return st.one_of(
        word,
        word,
        word,
        st.text(SECRET_ALPHABET, max_size=5),
        st.lists(word, min_size=1, max_size=3),
        st.dictionaries(TEXT, word, min_size=1, max_size=2),
        st.just('********'),
        st.integers(),
        st.none(),
    )


def secret_strings(value):
    """The secret words (6+ letters) inside a generated value."""
    if isinstance(value, str):
        return [value] if len(value) >= 6 and set(value) <= set(SECRET_ALPHABET) else []
    if isinstance(value, list):
        return [word for item in value for word in secret_strings(item)]
    if isinstance(value, dict):
        return [word for item in value.values() for word in secret_strings(item)]
    return []


RECORD_FIELDS = {
    'document_id': st.one_of(st.uuids().map(str), st.uuids().map(str), ANY_TEXT, JSON),
    'source_id': INTISH,
    'spycloud_publish_date': DATES,
    'severity': st.one_of(st.sampled_from([2, 5, 20, 25, 26, 30]), INTISH),
    'sighting': st.one_of(st.integers(1, 13), JSON, NUMERIC_TEXT),
    'password': secrets(),
    'password_plaintext': secrets(),
    'salt': secrets(),
    'cookie_value': secrets(),
    'password_type': st.one_of(st.sampled_from(['plaintext', 'bcrypt', 'md5', 'sha1']), JSON),
    'email': st.one_of(st.emails(), ANY_TEXT, JSON),
    'username': st.one_of(TEXT, JSON),
    'domain': st.one_of(SITES, JSON),
    'target_url': SITES,
    'infected_machine_id': st.one_of(st.uuids().map(str), ANY_TEXT, JSON),
    'infected_time': DATES,
    'ip_addresses': st.one_of(st.lists(st.ip_addresses().map(str), max_size=3), JSON),
    'av_softwares': st.lists(TEXT, max_size=3),
    'cookie_name': secrets(),
    'session_id': secrets(),
    'access_token': secrets(),
    'log_data': st.dictionaries(st.sampled_from(['password', 'sessionid', 'Cookie']), secrets()),
    'cc_number': st.one_of(TEXT, JSON),
}


@st.composite
def raw_records(draw, source_ids=None):
    """A record as SpyCloud's JSON could carry it: the three guaranteed fields mostly valid,
    everything optional, extra fields of any name and value."""
    record = draw(st.fixed_dictionaries({}, optional=RECORD_FIELDS))
    if draw(st.integers(0, 9)) < 8:  # mostly the guaranteed fields, in their usual shape
        record['document_id'] = str(draw(st.uuids()))
        record['spycloud_publish_date'] = draw(
            st.builds(lambda m, f: f(m), MOMENTS, st.sampled_from(DATE_FORMATS[:4]))
        )
        if source_ids:
            record['source_id'] = draw(st.sampled_from(source_ids))
    record.update(draw(st.dictionaries(TEXT, JSON, max_size=3)))
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON)  # not even an object
    return record


CATALOG_FIELDS = {
    'id': INTISH,
    'uuid': st.one_of(st.uuids().map(str), ANY_TEXT, JSON),
    'title': st.one_of(TEXT, ANY_TEXT, JSON),
    'short_title': ANY_TEXT,
    'description': st.one_of(ANY_TEXT, JSON),
    'site_description': st.one_of(ANY_TEXT, JSON),
    'site': SITES,
    'type': st.one_of(st.sampled_from(['PUBLIC', 'PRIVATE']), JSON),
    'confidence': st.one_of(st.sampled_from([1, 2, 3]), JSON, st.lists(st.integers(1, 3))),
    'spycloud_publish_date': DATES,
    'acquisition_date': DATES,
    'num_records': INTISH,
    'assets': st.one_of(
        st.dictionaries(TEXT, st.integers(0, 10**9), max_size=5), JSON, st.lists(TEXT, max_size=3)
    ),
    'combo_list_flag': st.one_of(st.sampled_from(['YES', 'NO', 'yes', 'Y', '']), JSON),
    'tlp': st.one_of(st.sampled_from(['amber', 'GREEN', 'white', 'red', 'clear']), JSON),
    'sensitive_source': JSON,
}


@st.composite
def raw_catalogs(draw, catalog_id=None):
    catalog = draw(st.fixed_dictionaries({}, optional=CATALOG_FIELDS))
    if catalog_id is not None and draw(st.integers(0, 9)) < 8:
        catalog['id'] = catalog_id
        if draw(st.booleans()):  # a real breached site now and then, for Leaked_From
            catalog['site'] = draw(st.from_regex(r'\A([a-z][a-z0-9]{0,9}\.){1,2}(com|example)\Z'))
    catalog.update(draw(st.dictionaries(TEXT, JSON, max_size=2)))
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON)
    return catalog


def observables():
    kinds = sorted(PAGE_ENDPOINTS)
    return st.one_of(
        st.emails().map(lambda value: Observable('email', value)),
        st.builds(
            Observable,
            st.sampled_from(kinds),
            st.text(string.ascii_letters + '.@-_', min_size=1),
        ),
    )


@st.composite
def exposures(draw):
    """The raw catalogs and records of one lookup: records mostly from those catalogs."""
    catalog_ids = draw(st.lists(st.integers(1, 10**6), max_size=4, unique=True))
    catalogs = [draw(raw_catalogs(catalog_id)) for catalog_id in catalog_ids]
    records = draw(st.lists(raw_records(catalog_ids or None), max_size=6))
    return draw(observables()), records, catalogs


# -- helpers ----------------------------------------------------------------------------------


def accepted(parse, raw):
    """The parsed value, or None when refused with MalformedData (any other error fails)."""
    try:
        return parse(raw)
    except MalformedData:
        return None


def build(observable, raw_records_, raw_catalogs_):
    records = [r for r in (accepted(BreachRecord.from_api, raw) for raw in raw_records_) if r]
    catalogs = {}
    for raw in raw_catalogs_:
        catalog = accepted(Catalog.from_api, raw)
        if catalog is not None:
            catalogs.setdefault(catalog.id, catalog)
    return Exposure(observable=observable, records=records, hits=len(records), catalogs=catalogs)


def bundle_of(*doc_lists):
    bundle = Bundle()
    for docs in doc_lists:
        bundle.extend(docs)
    return bundle.data()


def assert_valid_ctim(data):
    """XDR's contract, as strict JSON (no NaN or Infinity), with int64 counts."""
    text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    BUNDLE.validate(json.loads(text))
    for doc in data.get('sightings', {}).get('docs', []):
        assert INT64[0] <= doc['count'] <= INT64[1], doc['count']
        assert doc['count'] >= 1
        start = doc['observed_time']['start_time']
        assert start == doc['observed_time']['end_time']
    return text


# -- properties -------------------------------------------------------------------------------


@PROPERTIES
@given(exposures())
def test_any_lookup_maps_to_valid_ctim_and_hides_secrets(exposure):
    observable, records, catalogs = exposure
    built = build(observable, records, catalogs)
    secrets_ = [
        word
        for record in built.records
        for name in SECRET_FIELDS
        for word in secret_strings(record.get(name))
    ]
    never = [
        word
        for record in built.records
        for name in NEVER_SHOWN
        for word in secret_strings(record.get(name))
        if word not in secrets_  # the same word as a password is shown with the password
    ]
    for show_passwords in (False, True):
        sightings, indicators, relationships = exposure_entities(
            built, MappingOptions(show_passwords=show_passwords)
        )
        assert len(sightings) == len(built.records)
        linked = [r for r in built.records if r.source_id in built.catalogs]
        assert len(relationships) == len(linked)
        assert len(indicators) == len({r.source_id for r in linked})
        assert {rel['target_ref'] for rel in relationships} <= {doc['id'] for doc in indicators}
        text = assert_valid_ctim(bundle_of(sightings, indicators, relationships))
        if not show_passwords:
            for secret in secrets_:
                assert secret not in text  # masked: not even inside a longer value
        for secret in never:
            assert secret not in text  # withheld, whatever the module asks
    # The control: shown on request, so the search above is not blind. (A secret inside a
    # list or an object is shown as JSON, where it appears too.)
    for secret in secrets_:
        assert secret in text


@SMALLER
@given(
    st.lists(raw_records(), min_size=1, max_size=4),
    st.lists(st.tuples(raw_records(), st.text(SECRET_ALPHABET, min_size=6)), max_size=6),
    observables(),
)
def test_an_infected_device_never_shows_its_other_records_secrets(own, others, observable):
    """Compass's other records of the machine are summarised: none of their passwords,
    cookies or URL tokens appear, even with show_passwords (which shows the sighted record's)."""
    machine = 'FDDB8900AA'
    own = [dict(r, infected_machine_id=machine) for r in own if isinstance(r, dict)]
    stolen = [
        dict(r, infected_machine_id=machine, target_url=f'https://app.example/in?token={token}')
        for r, token in others
        if isinstance(r, dict)
    ]
    built = build(observable, own, [])
    built.devices = summarise([machine], own + stolen)
    tokens = [token for r, token in others if isinstance(r, dict)]
    hidden = tokens + [
        word
        for record in stolen
        for name in SECRET_FIELDS
        for word in secret_strings(record.get(name))
    ]
    shown_anyway = json.dumps(own, default=str, ensure_ascii=False)
    sightings, indicators, relationships = exposure_entities(
        built, MappingOptions(show_passwords=True)
    )
    text = assert_valid_ctim(bundle_of(sightings, indicators, relationships))
    assert not [word for word in hidden if word in text and word not in shown_anyway]
    if built.records and stolen:  # the control: the stolen records' application is listed
        assert '"app.example"' in text


@SMALLER
@given(raw_records(), st.one_of(st.none(), raw_catalogs()), observables())
def test_a_sighting_of_any_record(raw_record, raw_catalog, observable):
    record = accepted(BreachRecord.from_api, raw_record)
    if record is None:
        return
    catalog = accepted(Catalog.from_api, raw_catalog) if raw_catalog is not None else None
    doc = sighting(observable, record, catalog, MappingOptions())
    assert_valid_ctim(bundle_of([doc]))
    assert doc['observed_time']['start_time'].endswith('Z')
    assert doc['external_ids'][0] == record.document_id


@SMALLER
@given(raw_catalogs())
def test_an_indicator_of_any_catalog(raw_catalog):
    catalog = accepted(Catalog.from_api, raw_catalog)
    if catalog is None:
        return
    doc = indicator(catalog, MappingOptions())
    assert_valid_ctim(bundle_of([doc]))
    assert doc['external_ids'][0] == str(catalog.id)
    assert doc['confidence'] in ('High', 'Medium', 'Low')


@SMALLER
@given(st.one_of(raw_records(), JSON))
def test_records_are_parsed_or_refused(raw):
    record = accepted(BreachRecord.from_api, raw)
    if record is not None:
        assert isinstance(record.document_id, str) and record.document_id.strip()
        assert record.published.tzinfo is not None
        assert record.source_id is None or isinstance(record.source_id, int)
        assert record.severity is None or isinstance(record.severity, int)


@SMALLER
@given(st.one_of(raw_catalogs(), JSON))
def test_catalogs_are_parsed_or_refused(raw):
    catalog = accepted(Catalog.from_api, raw)
    if catalog is not None:
        assert isinstance(catalog.id, int) and not isinstance(catalog.id, bool)


@SMALLER
@given(DATES)
def test_dates_parse_to_utc_or_nothing(value):
    moment = parse_time(value)
    assert moment is None or moment.utcoffset() == timedelta(0)


def test_the_strategies_reach_the_interesting_cases():
    """A guard against a strategy that quietly stopped producing what the properties need."""
    seen = {'refused': 0, 'mapped': 0, 'secret': 0, 'linked': 0, 'domain': 0}

    @settings(SMALLER, max_examples=60, suppress_health_check=list(HealthCheck))
    @given(exposures())
    def explore(exposure):
        observable, records, catalogs = exposure
        built = build(observable, records, catalogs)
        seen['refused'] += len(records) - len(built.records)
        seen['mapped'] += len(built.records)
        seen['secret'] += sum(
            bool(secret_strings(r.get(n))) for r in built.records for n in SECRET_FIELDS
        )
        sightings, _, relationships = exposure_entities(built, MappingOptions())
        seen['linked'] += len(relationships)
        seen['domain'] += sum(bool(s['relations']) for s in sightings)

    explore()
    assert all(count >= 5 for count in seen.values()), seen


# -- the bugs these properties found, pinned ----------------------------------------------------


def test_found_integers_that_int_refuses_are_no_ids():
    for text in ('²', '--5', '9' * 5000, '١٢٣'):
        record = BreachRecord.from_api(
            {
                'document_id': 'd',
                'source_id': text,
                'severity': text,
                'spycloud_publish_date': '2020-01-09T00:00:00Z',
            }
        )
        assert record.source_id is None and record.severity is None
        with pytest.raises(MalformedData):
            Catalog.from_api({'id': text})
    assert Catalog.from_api({'id': ' -42 '}).id == -42


def test_found_years_below_1000_are_written_with_four_digits():
    record = BreachRecord.from_api(
        {'document_id': 'd', 'spycloud_publish_date': '0999-01-02T03:04:05Z'}
    )
    doc = sighting(Observable('email', 'a@b.example'), record, None, MappingOptions())
    assert doc['observed_time']['start_time'] == '0999-01-02T03:04:05.000Z'
    assert_valid_ctim(bundle_of([doc]))


def test_found_confidence_of_an_unhashable_type_is_low():
    for raw in ([1], {'level': 1}, '1', None, True):
        assert (
            indicator(Catalog.from_api({'id': 1, 'confidence': raw}), MappingOptions())[
                'confidence'
            ]
            == 'Low'
        )


def test_found_counts_beyond_int64_are_one():
    for raw, count in ((2**63, 1), (2**63 - 1, 2**63 - 1), (0, 1), (13, 13)):
        record = BreachRecord.from_api(
            {'document_id': 'd', 'sighting': raw, 'spycloud_publish_date': '2020-01-09T00:00:00Z'}
        )
        doc = sighting(Observable('email', 'a@b.example'), record, None, MappingOptions())
        assert doc['count'] == count
