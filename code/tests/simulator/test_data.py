"""Contract tests for simulator.data: relay tests rely on these exact, repeatable shapes."""

import collections
import datetime
import hashlib
import ipaddress
import re
import statistics
import string
import uuid

import pytest

from simulator import data

pytestmark = pytest.mark.pure  # no server: `make test-fast` runs it

DATE_RE = re.compile(r'^(\d{4})-\d{2}-\d{2}T00:00:00Z$')
BASE_FIELDS = {
    'document_id',
    'source_id',
    'spycloud_publish_date',
    'severity',
    'email',
    'email_domain',
    'email_username',
    'domain',
}
SEV20_FIELDS = BASE_FIELDS | {'password', 'password_type', 'password_plaintext', 'sighting'}
SEV25_FIELDS = SEV20_FIELDS | {
    'infected_machine_id',
    'log_id',
    'user_browser',
    'user_os',
    'ip_addresses',
    'country',
    'country_code',
    'keyboard_languages',
    'infected_path',
    'infected_time',
    'user_hostname',
}


def first_with_records(kind, candidates):
    for value in candidates:
        if data.records_for(kind, value):
            return value
    raise AssertionError('no candidate has records')


def test_records_are_deterministic_and_depend_on_the_value():
    first = data.records_for('emails', 'alice.smith@acme.example')
    assert first == data.records_for('emails', 'alice.smith@acme.example')
    assert data.records_for('emails', 'r5c2@x.example') == data.records_for(
        'emails', 'r5c2@x.example'
    )
    assert data.records_for('emails', 'r5c2@x.example') != data.records_for(
        'emails', 'r5c2@y.example'
    )


def test_email_lookup_is_case_insensitive_and_lowercases_the_email():
    records = data.records_for('emails', 'R4C2@Bench.Example')
    assert records == data.records_for('emails', 'r4c2@bench.example')
    assert {r['email'] for r in records} == {'r4c2@bench.example'}


@pytest.mark.parametrize('n,m', [(1, 1), (4, 4), (100, 20), (37, 3), (5, 10), (60, 60)])
def test_rc_label_gives_exact_record_and_catalog_counts(n, m):
    value = f'r{n}c{m}@bench.example'
    records = data.records_for('emails', value)
    ids = data.catalog_ids_for('emails', value)
    assert len(records) == n
    assert len({r['source_id'] for r in records}) == min(n, m) == len(ids)
    assert [r['source_id'] for r in records] == [ids[i % m] for i in range(n)]


def test_rc_label_accepts_a_suffix_and_the_suffix_changes_the_data():
    plain = data.records_for('emails', 'r7c2@x.example')
    tagged = data.records_for('emails', 'r7c2-run42@x.example')
    assert len(tagged) == 7 and len({r['source_id'] for r in tagged}) == 2
    assert [r['document_id'] for r in plain] != [r['document_id'] for r in tagged]


@pytest.mark.parametrize(
    'kind,value',
    [
        ('emails', 'none@acme.example'),
        ('emails', 'r0c0@acme.example'),
        ('emails', 'r0c5@acme.example'),
        ('domains', 'none.acme.example'),
        ('domains', 'r0c0.acme.example'),
        ('usernames', 'none'),
        ('emails', 'not-an-email'),
        ('ips', 'not-an-ip'),
    ],
)
def test_zero_record_observables(kind, value):
    assert data.records_for(kind, value) == []
    assert data.catalog_ids_for(kind, value) == []


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        data.records_for('passwords', 'hunter2')


def test_first_four_severities_and_overall_mix():
    assert [r['severity'] for r in data.records_for('emails', 'r4c4@x.example')] == [20, 25, 5, 2]
    counts = collections.Counter(
        r['severity'] for r in data.records_for('emails', 'r1000c50@x.example')
    )
    assert counts == {20: 700, 25: 160, 5: 80, 2: 60}
    assert len(data.SEVERITY_PATTERN) == 50


def test_records_sorted_newest_first_with_midnight_dates_in_range():
    records = data.records_for('emails', 'r300c30@x.example')
    dates = [r['spycloud_publish_date'] for r in records]
    assert dates == sorted(dates, reverse=True)
    for stamp in dates:
        match = DATE_RE.match(stamp)
        assert match and 2016 <= int(match.group(1)) <= 2026
    assert len(set(dates)) > 200  # distinct-ish, so date filters have something to cut


def test_document_ids_are_unique_uuids():
    records = data.records_for('emails', 'r200c10@x.example')
    ids = [r['document_id'] for r in records]
    assert len(set(ids)) == 200
    assert all(str(uuid.UUID(i)) == i for i in ids)


def test_fields_per_severity():
    records = data.records_for('emails', 'r400c40@fields.example')
    seen_target = collections.Counter()
    for record in records:
        severity = record['severity']
        assert BASE_FIELDS <= set(record)
        assert isinstance(record['source_id'], int)
        assert record['email'] == 'r400c40@fields.example'
        assert record['email_domain'] == record['domain'] == 'fields.example'
        assert record['email_username'] == 'r400c40'
        if severity == 2:
            assert set(record) == BASE_FIELDS
        elif severity in (20, 25):
            assert (SEV25_FIELDS if severity == 25 else SEV20_FIELDS) <= set(record)
            assert record['password_type'] == 'plaintext'
            assert record['password'] == record['password_plaintext']
            assert 6 <= len(record['password']) <= 16
            assert all(c in string.printable and not c.isspace() for c in record['password'])
            assert isinstance(record['sighting'], int) and record['sighting'] >= 1
            seen_target[severity, 'target_url' in record] += 1
            if severity == 25:
                assert re.fullmatch(r'[0-9a-f]{64}', record['log_id'])
                assert record['ip_addresses']
                for ip in record['ip_addresses']:
                    ipaddress.ip_address(ip)
                assert len(record['country_code']) == 2
        else:
            assert severity == 5
            assert 'password_plaintext' not in record
            if 'password' in record:
                assert record['password_type'] in ('bcrypt', 'md5', 'sha1', 'sha256')
                assert record['password_type'] != 'plaintext'
            else:
                assert {'full_name', 'job_title', 'phone'} <= set(record)
    with_url, without_url = seen_target[20, True], seen_target[20, False]
    assert 0.3 < with_url / (with_url + without_url) < 0.7  # "about half" of sev 20


def test_passwords_differ_between_records():
    passwords = [
        r['password'] for r in data.records_for('emails', 'r50c5@pw.example') if r['severity'] == 20
    ]
    assert len(set(passwords)) == len(passwords)


def test_catalog_ids_follow_the_documented_formula():
    value = 'someone@acme.example'
    h = int.from_bytes(hashlib.sha256(value.encode()).digest(), 'big')
    ids = data.catalog_ids_for('emails', 'r9c3@acme.example')
    h_rc = int.from_bytes(hashlib.sha256(b'r9c3@acme.example').digest(), 'big')
    assert ids == [20000 + h_rc % 40000 + j for j in range(3)]
    random_ids = data.catalog_ids_for('emails', value)
    assert all(i == 20000 + h % 40000 + j for j, i in enumerate(random_ids))


def test_random_observables_follow_the_spec_distribution():
    counts, catalogs = [], []
    for i in range(1500):
        value = f'employee{i}@corp.example'
        records = data.records_for('emails', value)
        counts.append(len(records))
        catalogs.append(len({r['source_id'] for r in records}))
        assert len(data.catalog_ids_for('emails', value)) == catalogs[-1]
    exposed = [c for c in counts if c]
    assert 0.38 < counts.count(0) / len(counts) < 0.52
    assert 1 <= statistics.median(exposed) <= 2
    assert max(counts) <= 50
    assert max(counts) >= 10  # heavy tail exists
    ratio = sum(catalogs) / sum(counts)
    assert 0.5 < ratio < 0.95
    assert all(c <= n for c, n in zip(catalogs, counts, strict=True))


def test_domain_records_cover_several_accounts_on_that_domain():
    records = data.records_for('domains', 'r20c4.bench.example')
    assert len(records) == 20
    assert len({r['source_id'] for r in records}) == 4
    emails = {r['email'] for r in records}
    assert len(emails) > 3
    for record in records:
        assert re.fullmatch(r'user\d+@r20c4\.bench\.example', record['email'])
        assert record['domain'] == record['email_domain'] == 'r20c4.bench.example'


@pytest.mark.parametrize(
    'candidates',
    [
        [f'192.0.2.{i}' for i in range(1, 60)],
        [f'2001:db8::{i:x}' for i in range(1, 60)],
    ],
)
def test_ip_records_are_infostealer_records_naming_the_ip(candidates):
    ip = first_with_records('ips', candidates)
    records = data.records_for('ips', ip)
    for record in records:
        assert record['severity'] == 25
        assert SEV25_FIELDS <= set(record)
        assert ip in record['ip_addresses']


def test_ip_cidr_query_returns_addresses_inside_the_network():
    cidr = first_with_records(
        'ips', [f'198.51.100.0_{p}' for p in range(20, 31)] + [f'10.{i}.0.0_16' for i in range(40)]
    )
    network = ipaddress.ip_network(cidr.replace('_', '/'), strict=False)
    for record in data.records_for('ips', cidr):
        assert ipaddress.ip_address(record['ip_addresses'][0]) in network


def test_username_records_carry_the_username_and_an_email():
    records = data.records_for('usernames', 'r10c5')
    assert len(records) == 10 and len({r['source_id'] for r in records}) == 5
    for record in records:
        assert record['username'] == 'r10c5'
        assert '@' in record['email']
    odd = first_with_records('usernames', [f'j.doe{i}' for i in range(40)])
    assert all(r['username'] == odd for r in data.records_for('usernames', odd))


def test_catalog_shape_and_determinism():
    entry = data.catalog(31361)
    assert entry == data.catalog(31361)
    required = {
        'id',
        'uuid',
        'title',
        'short_title',
        'description',
        'site',
        'type',
        'confidence',
        'acquisition_date',
        'spycloud_publish_date',
        'num_records',
        'assets',
        'premium_flag',
        'tlp',
        'breach_main_category',
        'breach_category',
        'sensitive_source',
    }
    for catalog_id in range(20000, 20260):
        entry = data.catalog(catalog_id)
        assert required <= set(entry)
        assert entry['id'] == catalog_id
        assert entry['uuid'] == str(uuid.UUID(entry['uuid']))
        assert entry['type'] in ('PUBLIC', 'PRIVATE')
        assert entry['tlp'] == 'amber'
        assert isinstance(entry['sensitive_source'], bool)
        assert isinstance(entry['assets'], dict) and entry['assets']['email'] > 0
        assert 50_000 <= entry['num_records'] <= 250_000_000
        assert DATE_RE.match(entry['spycloud_publish_date'])
        assert DATE_RE.match(entry['acquisition_date'])
        lag = (
            datetime.date.fromisoformat(entry['spycloud_publish_date'][:10])
            - datetime.date.fromisoformat(entry['acquisition_date'][:10])
        ).days
        assert 1 <= lag <= 21
        if catalog_id % 10 == 7:
            assert entry['combo_list_flag'] == 'YES'
            assert entry['site'] == 'n/a' and entry['breach_main_category'] == 'combolist'
        else:
            assert 'combo_list_flag' not in entry
        if catalog_id % 10 == 3:
            assert entry['site'] == 'n/a' and entry['breach_category'] == 'infostealer'
        if catalog_id % 10 not in (3, 7):
            assert entry['site'] == f'breach-{catalog_id}.example'
        assert ('site_description' in entry) == (catalog_id % 13 != 5)
    assert data.catalog(20000)['uuid'] != data.catalog(20001)['uuid']


def test_catalog_confidence_is_mostly_three():
    values = collections.Counter(data.catalog(i)['confidence'] for i in range(30000, 31000))
    assert set(values) <= {1, 2, 3}
    assert values[3] > 750 and values[1] > 0 and values[2] > 0


@pytest.mark.parametrize(
    'identifier,expected',
    [
        ('example.org', 'domain'),
        ('mail.example.org', 'subdomain'),
        ('alice@example.org', 'email'),
        ('192.0.2.7', 'ip'),
    ],
)
def test_watchlist_item_shape(identifier, expected):
    item = data.watchlist_item(identifier)
    assert item['identifier_name'] == identifier
    assert item['identifier_type'] == expected
    assert item['status'] == 'ACTIVE' and item['verified'] == 'YES'
    assert DATE_RE.match(item['last_discovered'])
    for name in (
        'corporate_record_count',
        'infected_employee_record_count',
        'infected_consumer_record_count',
        'infected_user_record_count',
    ):
        assert isinstance(item[name], int)
