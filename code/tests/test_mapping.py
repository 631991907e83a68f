"""The pure mapping functions, edge by edge."""

from datetime import UTC, datetime

import pytest

from spycloud_relay.ctim import mapping
from spycloud_relay.ctim.bundle import Bundle
from spycloud_relay.spycloud.models import (
    BreachRecord,
    Catalog,
    MalformedData,
    Observable,
    parse_time,
)

pytestmark = pytest.mark.pure  # no server: `make test-fast` runs it

RECORD = {
    'document_id': 'd-1',
    'source_id': 7,
    'spycloud_publish_date': '2024-02-03T00:00:00Z',
    'severity': 20,
    'email': 'a@b.example',
    'password': 'hunter22',
    'password_type': 'plaintext',
    'password_plaintext': 'hunter22',
    'salt': 'pepper-salt',
}
CATALOG = {
    'id': 7,
    'uuid': 'u-7',
    'title': 'Big Leak',
    'site': 'big-leak.example',
    'description': 'desc',
    'site_description': 'a site',
    'confidence': 2,
    'spycloud_publish_date': '2024-01-01T00:00:00Z',
    'assets': {'email': 1},
    'tlp': 'amber',
}
OPTIONS = mapping.MappingOptions()


def record(**changes):
    return BreachRecord.from_api({**RECORD, **changes})


def catalog(**changes):
    return Catalog.from_api({**CATALOG, **changes})


@pytest.mark.parametrize(
    'score, name',
    [
        (1, 'Low'),
        (2, 'Low'),
        (3, 'Medium'),
        (5, 'Medium'),
        (6, 'High'),
        (20, 'High'),
        (24, 'High'),
        (25, 'Critical'),
        (26, 'Critical'),
        (30, 'Critical'),
        (None, 'Unknown'),
    ],
)
def test_severity_scale(score, name):
    assert mapping.severity(record(severity=score), catalog()) == name


@pytest.mark.parametrize(
    'flag, combo',
    [('YES', True), ('yes', True), ('NO', False), ('', False), (None, False), (True, True)],
)
def test_combo_list_flag_is_read_not_just_tested_for_truth(flag, combo):
    got = mapping.severity(record(severity=25), catalog(combo_list_flag=flag))
    assert got == ('Medium' if combo else 'Critical')


@pytest.mark.parametrize(
    'site, domain',
    [
        ('big-leak.example', 'big-leak.example'),
        ('Big-Leak.Example.', 'big-leak.example'),
        ('n/a', None),
        ('', None),
        (None, None),
        ('127.0.0.1:8000', None),
        ('10.0.0.1', None),
        ('https://x.example/login', None),
        (42, None),
    ],
)
def test_breached_domain(site, domain):
    assert mapping.breached_domain(catalog(site=site)) == domain


@pytest.mark.parametrize(
    'value, kind, shown',
    [
        ('tiger31', 'plaintext', 't*****1 (plaintext, 7 chars)'),
        ('abc', 'plaintext', '***** (plaintext, 3 chars)'),
        ('********', 'plaintext', '********'),
        ('5f4dcc3b5aa765d61d8327deb882cf99', 'md5', '5*****9 (md5, 32 chars)'),
        ('somesalt', None, 's*****t (8 chars)'),
    ],
)
def test_mask(value, kind, shown):
    assert mapping.mask(value, kind) == shown


def test_data_table_masks_every_secret_field():
    doc = mapping.data_table(
        record(cookie_value='sess-secret-value', cc_number='4111111111111111'), OPTIONS
    )
    row = dict(zip([c['name'] for c in doc['columns']], doc['rows'][0], strict=True))
    assert row['password'] == 'h*****2 (plaintext, 8 chars)'
    assert row['password_plaintext'] == 'h*****2 (plaintext, 8 chars)'
    assert row['salt'] == 'p*****t (salt, 11 chars)'
    assert 'sess-secret-value' not in str(row) and '4111111111111111' not in str(row)
    assert row['email'] == 'a@b.example'
    assert all(c['type'] == 'string' for c in doc['columns'])


def test_the_password_type_is_shown_not_masked():
    """It names the hash (plaintext, sha1), which an analyst weighs; it holds no secret. The
    plaintext beside a hash is SpyCloud's crack of it."""
    doc = mapping.data_table(record(password_type='sha1'), OPTIONS)
    row = dict(zip([c['name'] for c in doc['columns']], doc['rows'][0], strict=True))
    assert row['password_type'] == 'hashed (sha1), cracked'
    assert row['password'] == 'h*****2 (sha1, 8 chars)'


def test_data_table_shows_passwords_when_asked_and_never_the_numbers():
    """``custom_show_passwords`` shows passwords, hashes and salts; a card, bank or identity
    number stays masked, and a cookie withheld."""
    numbers = {
        'cc_number': '4111111111111111',
        'cc_code': '737',
        'bank_number': 'DE89370400440532013000',
        'ssn': '078-05-1120',
        'drivers_license_number': 'D1234567',
    }
    doc = mapping.data_table(
        record(cookie_value='sess-secret-value', **numbers),
        mapping.MappingOptions(show_passwords=True),
    )
    row = dict(zip([c['name'] for c in doc['columns']], doc['rows'][0], strict=True))
    assert row['password'] == row['password_plaintext'] == 'hunter22'
    assert row['salt'] == 'pepper-salt'
    for name, value in numbers.items():
        assert value not in str(row) and row[name].endswith('chars)'), name
    assert row['cookie_value'] == '(withheld)'


def test_data_table_cells():
    doc = mapping.data_table(
        record(ip_addresses=['1.2.3.4', '::1'], nested={'a': 1}, nothing=None), OPTIONS
    )
    row = dict(zip([c['name'] for c in doc['columns']], doc['rows'][0], strict=True))
    assert row['ip_addresses'] == '1.2.3.4, ::1'
    assert row['nested'] == '{"a": 1}'
    assert 'nothing' not in row


def test_sighting_without_catalog():
    doc = mapping.sighting(Observable('email', 'a@b.example'), record(), None, OPTIONS)
    assert doc['description'] == 'Present in an undisclosed breach source'
    assert 'source_uri' not in doc and doc['relations'] == []
    assert doc['observed_time']['start_time'] == '2024-02-03T00:00:00.000Z'


def test_sighting_count_falls_back_to_one():
    observable = Observable('email', 'a@b.example')
    for bad in (0, -1, 'many', True):
        assert mapping.sighting(observable, record(sighting=bad), None, OPTIONS)['count'] == 1
    assert mapping.sighting(observable, record(sighting=4), None, OPTIONS)['count'] == 4


def test_indicator_fields():
    doc = mapping.indicator(catalog(), OPTIONS)
    assert doc['confidence'] == 'Medium'
    assert doc['tlp'] == 'amber'
    assert doc['external_references'] == [
        {'source_name': 'SpyCloud', 'description': 'a site', 'url': 'https://big-leak.example'},
        {
            'source_name': 'SpyCloud',
            'description': 'desc',
            'url': 'https://portal.spycloud.com/breach/catalog/u-7',
            'external_id': 'u-7',
        },
    ]


def test_indicator_of_a_sparse_catalog():
    doc = mapping.indicator(Catalog.from_api({'id': 9}), OPTIONS)
    assert doc['title'] == 'SpyCloud breach source 9'
    assert doc['valid_time'] == {} and doc['tags'] == [] and doc['confidence'] == 'Low'
    assert doc['external_references'] == [] and 'tlp' not in doc


def test_ids_are_deterministic():
    assert mapping.transient_id('sighting', 'x') == mapping.transient_id('sighting', 'x')
    assert mapping.transient_id('sighting', 'x') != mapping.transient_id('sighting', 'y')


@pytest.mark.parametrize(
    'raw',
    [
        None,
        [],
        {'source_id': 1},
        {'document_id': ''},
        {'document_id': 'x'},
        {'document_id': 'x', 'spycloud_publish_date': 'yesterday'},
    ],
)
def test_malformed_records_are_refused(raw):
    with pytest.raises(MalformedData):
        BreachRecord.from_api(raw)


@pytest.mark.parametrize('raw', [None, {}, {'id': 'abc'}, {'id': True}])
def test_malformed_catalogs_are_refused(raw):
    with pytest.raises(MalformedData):
        Catalog.from_api(raw)


@pytest.mark.parametrize(
    'text, moment',
    [
        ('2020-01-09T00:00:00Z', datetime(2020, 1, 9, tzinfo=UTC)),
        ('2020-01-09 10:11:12', datetime(2020, 1, 9, 10, 11, 12, tzinfo=UTC)),
        ('2020-01-09T02:00:00+02:00', datetime(2020, 1, 9, tzinfo=UTC)),
        ('2020-01-09', datetime(2020, 1, 9, tzinfo=UTC)),
        ('garbage', None),
        (None, None),
        (20200109, None),
    ],
)
def test_parse_time(text, moment):
    assert parse_time(text) == moment


def test_bundle_keeps_order_and_unique_docs():
    bundle = Bundle()
    assert bundle.data() == {}
    bundle.add({'type': 'sighting', 'id': 's1'}, {'type': 'indicator', 'id': 'i1'})
    bundle.extend([{'type': 'sighting', 'id': 's2'}, {'type': 'indicator', 'id': 'i1'}])
    assert bundle.data() == {
        'sightings': {
            'count': 2,
            'docs': [{'type': 'sighting', 'id': 's1'}, {'type': 'sighting', 'id': 's2'}],
        },
        'indicators': {'count': 1, 'docs': [{'type': 'indicator', 'id': 'i1'}]},
    }


def test_an_indicator_keeps_within_ctims_text_limits():
    """A catalog title over CTIM's 1024 characters made XDR refuse the indicator (and every
    relationship to it): its texts are cut, marked, to each field's limit."""
    doc = mapping.indicator(catalog(title='T' * 3000, description='D' * 9000), OPTIONS)
    assert len(doc['title']) == 1024 and doc['title'].endswith('…')
    assert len(doc['short_description']) == 2048 and doc['short_description'].endswith('…')
    assert len(doc['description']) == 5000 and doc['description'].endswith('…')
    assert mapping.indicator(catalog(), OPTIONS)['title'] == 'Big Leak'  # short ones untouched


# Every field of a breach record the SpyCloud spec lists (§2.5), and what its cell shows.
SPEC_FIELDS = {
    'hidden': (
        'document_id source_id spycloud_publish_date severity email_domain email_username domain '
        'sighting infected_machine_id'
    ),
    'masked': (
        'password password_plaintext salt cc_number cc_code cc_bin cc_expiration cc_last_four '
        'bank_number account_number ssn ssn_last_four taxid drivers_license_number '
        'passport_number national_id'
    ),
    'withheld': 'cookie_name cookie_value',
    'clear': (
        'email username target_domain target_subdomain log_id infected_path infected_time '
        'user_browser user_os user_hostname user_sys_domain user_sys_registered_owner user_agent '
        'keyboard_languages display_resolution timezone country country_code city postal_code '
        'state isp malware_family mac_address system_model full_name first_name last_name phone '
        'address_1 dob job_title company_name industry social_twitter account_signup_time '
        'account_login_time account_last_activity_time account_modification_time '
        'record_modification_date record_cracked_date record_addition_date cookie_domain '
        'cookie_expiration'
    ),
}


def test_every_spec_field_is_shown_masked_withheld_or_hidden():
    """The allow- and deny-lists against the spec's list of fields: a cookie's name or value
    never in clear (it once was), credentials masked, the rest as SpyCloud sent it."""
    fields = {name: f'value-of-{name}' for names in SPEC_FIELDS.values() for name in names.split()}
    fields.update(document_id='d-1', source_id=7, severity=26, sighting=2)
    fields['spycloud_publish_date'] = '2024-02-03T00:00:00Z'
    table = mapping.data_table(BreachRecord.from_api(fields), OPTIONS)
    row = dict(zip([c['name'] for c in table['columns']], table['rows'][0], strict=True))
    for name in SPEC_FIELDS['hidden'].split():
        assert name not in row, name
    for name in SPEC_FIELDS['masked'].split():
        assert row[name].startswith('v*****') and fields[name] not in row[name], name
    for name in SPEC_FIELDS['withheld'].split():
        assert row[name] == '(withheld)', name
    for name in SPEC_FIELDS['clear'].split():
        assert row[name] == fields[name], name
    assert row['password_type'] == 'plaintext'  # the relay's own column: a plaintext is there
    assert 'value-of-cookie_name' not in str(row) and 'value-of-cookie_value' not in str(row)
