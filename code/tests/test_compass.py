"""Observe's Compass pivot end to end: relay over HTTP, the SpyCloud simulator's Compass.

Every expectation is derived from the simulator's data: the observable's records
(simulator/data.py) and the records Compass holds of each machine (simulator/compass.py).
"""

import json
from datetime import datetime
from uuid import NAMESPACE_X500, uuid5

import pytest

from simulator import compass, data
from support import docs, email

VALUE = 'r50c5@acme.example'  # eight infostealer records, on three machines
BIG = 'r4c2-dev300@acme.example'  # one infostealer record, on a machine of 300 records
ENDPOINT = 'compass-device-records'


@pytest.fixture
def pivot(make_relay):
    """A relay with the pivot on, as by default."""
    return make_relay(compass_pivot=True)


def records(value):
    return data.records_for('emails', value)


def machines(value):
    """The machines of the observable's infostealer records, in their order."""
    named = (r.get('infected_machine_id') for r in records(value) if r['severity'] >= 25)
    return list(dict.fromkeys(m for m in named if m))


def sighting_id(record):
    return f'transient:sighting-{uuid5(NAMESPACE_X500, record["document_id"])}'


def applications(machine):
    """domain → (credentials, newest infection) of the machine, from Compass's records."""
    found = {}
    for record in compass.records(machine):
        count, newest = found.get(record['target_domain'], (0, ''))
        found[record['target_domain']] = (count + 1, max(newest, record['infected_time']))
    return found


def ctim(stamp):
    return datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%SZ').strftime('%Y-%m-%dT%H:%M:%S.000Z')


def compass_calls(spycloud):
    return [e for e in spycloud.request_log if e['endpoint'] == ENDPOINT]


def test_one_sighting_per_device_and_account(pivot, spycloud):
    body = pivot.observe([email(VALUE)])
    expected = records(VALUE)
    leaders, grouped = [], {}
    for record in expected:
        machine = record.get('infected_machine_id')
        if machine is None:
            leaders.append(sighting_id(record))
        elif machine not in grouped:
            grouped[machine] = [record]
            leaders.append(sighting_id(record))
        else:
            grouped[machine].append(record)
    assert len(grouped) == 3 and sum(map(len, grouped.values())) == 8
    sightings = docs(body, 'sightings')
    assert [s['id'] for s in sightings] == leaders
    by_id = {s['id']: s for s in sightings}
    for group in grouped.values():
        doc = by_id[sighting_id(group[0])]
        assert doc['count'] == len(group)
        assert doc['severity'] == 'Critical'
        assert doc['targets'][1]['observables'] == [email(VALUE)]


def test_the_target_is_the_endpoint(pivot):
    body = pivot.observe([email(VALUE)])
    sightings = {s['id']: s for s in docs(body, 'sightings')}
    first = {}
    for record in records(VALUE):
        first.setdefault(record.get('infected_machine_id'), record)
    for machine in machines(VALUE):
        facts, own = compass.profile(machine), first[machine]
        doc = sightings[sighting_id(first[machine])]
        # Compass's facts of the machine, then the sighted record's own ones it lacks.
        hosts = dict.fromkeys([facts['user_hostname'], own['user_hostname']])
        ips = dict.fromkeys(facts['ip_addresses'] + own['ip_addresses'])
        macs = dict.fromkeys(m for m in (facts.get('mac_address'), own.get('mac_address')) if m)
        expected = [{'type': 'hostname', 'value': h} for h in hosts]
        expected += [{'type': 'ipv6' if ':' in ip else 'ip', 'value': ip} for ip in ips]
        expected += [{'type': 'mac_address', 'value': mac} for mac in macs]
        assert doc['targets'][0] == {
            'type': 'endpoint',
            'observables': expected,
            'observed_time': doc['observed_time'],
            'os': facts['user_os'],
        }


def test_the_data_table_lists_the_devices_applications(pivot):
    body = pivot.observe([email(VALUE)])
    sightings = {s['id']: s for s in docs(body, 'sightings')}
    first = {}
    for record in records(VALUE):
        first.setdefault(record.get('infected_machine_id'), record)
    for machine in machines(VALUE):
        table = sightings[sighting_id(first[machine])]['data']
        names = [c['name'] for c in table['columns']]
        at = names.index('exposed_application')
        rows = {row[at]: (row[at + 1], row[at + 2]) for row in table['rows']}
        expected = applications(machine)
        assert rows == {d: (n, ctim(t)) for d, (n, t) in expected.items()}
        assert table['row_count'] == len(table['rows']) == len(expected)
        # The record's own fields are on the first row only.
        assert all(cell == '' for row in table['rows'][1:] for cell in row[:at])


def test_no_secret_of_the_device_anywhere(pivot):
    text = json.dumps(pivot.observe([email(VALUE), email(BIG)]))
    secrets = set()
    for machine in machines(VALUE) + machines(BIG):
        for record in compass.records(machine):
            for name in ('password', 'password_plaintext', 'cookie_value', 'target_url'):
                if record.get(name) and record[name] != '********':
                    secrets.add(record[name])
            secrets.add(record['email'])  # the device's other accounts are counted, not named
    for record in records(VALUE) + records(BIG):
        secrets.update(record[n] for n in ('password', 'password_plaintext') if n in record)
    assert len(secrets) > 300
    assert not [secret for secret in secrets if secret in text]
    assert 'sessionid' not in text  # a stolen cookie's name


def test_the_machines_go_in_one_comma_list_call(pivot, spycloud):
    pivot.observe([email(VALUE)])
    calls = compass_calls(spycloud)
    assert len(calls) == 1
    assert calls[0]['path'].rsplit('/', 1)[1].split(',') == machines(VALUE)
    catalogs = -(-len(data.catalog_ids_for('emails', VALUE)) // 10)
    assert spycloud.stats()['requests'] == 1 + catalogs + 1


def test_a_device_of_hundreds_of_records_is_paged(pivot, spycloud):
    spycloud.page_size = 100
    body = pivot.observe([email(BIG)])
    (machine,) = machines(BIG)
    calls = compass_calls(spycloud)
    assert len(calls) == 3  # 300 records, 100 a page
    assert [bool(c['query'].get('cursor')) for c in calls] == [False, True, True]
    assert 'errors' not in body
    (record,) = [r for r in records(BIG) if r['severity'] >= 25]
    (doc,) = [s for s in docs(body, 'sightings') if s['id'] == sighting_id(record)]
    expected = applications(machine)
    rows = doc['data']['rows']
    assert len(rows) == 50 + 1
    assert rows[-1][-3] == f'and {len(expected) - 50} more application(s)'
    assert f'{len(expected)} application(s) exposed on the device' in doc['description']


def test_unverified_records_are_counted_but_their_masks_not_shown(pivot):
    body = pivot.observe([email(BIG)])
    (machine,) = machines(BIG)
    unverified = [r for r in compass.records(machine) if r.get('type') == 'unverified']
    assert unverified and all(r['password'] == '********' for r in unverified)
    text = json.dumps(body)
    assert not [r['email'] for r in unverified if r['email'] in text]
    (doc,) = [s for s in docs(body, 'sightings') if s['targets'][0]['type'] == 'endpoint']
    names = [c['name'] for c in doc['data']['columns']]
    at = names.index('exposed_application')
    shown = {row[at]: row[at + 1] for row in doc['data']['rows'][:-1]}
    masked_sites = {r['target_domain'] for r in unverified} & set(shown)
    assert masked_sites
    for site in masked_sites:
        assert shown[site] == applications(machine)[site][0]


def licence_warnings(body):
    return [e for e in body.get('errors', []) if 'Compass' in e['message']]


def test_no_compass_licence_is_one_warning_and_todays_answer(pivot, make_relay, spycloud):
    spycloud.compass_denied = {data.DEFAULT_API_KEY}
    values = [VALUE, 'r12c3@acme.example']
    body = pivot.observe([email(v) for v in values])
    calls = compass_calls(spycloud)
    assert 1 <= len(calls) <= 2  # the two lookups run at once: each may ask before the refusal
    assert all(c['status'] == 403 for c in calls)
    (warning,) = licence_warnings(body)
    assert warning['type'] == 'warning' and warning['code'] == 'permission denied'
    today = make_relay(compass_pivot=False).observe([email(v) for v in values])
    assert docs(body, 'sightings') == docs(today, 'sightings')
    # The refusal is remembered for the key: its next request warns without asking again.
    spycloud.reset_stats()
    again = pivot.observe([email(v) for v in values])
    assert compass_calls(spycloud) == []
    assert licence_warnings(again) == [warning]
    assert docs(again, 'sightings') == docs(today, 'sightings')


def test_a_hanging_compass_is_cut_at_the_deadline(make_relay, spycloud):
    relay = make_relay(compass_pivot=True, lookup_deadline_s=1.0)
    spycloud.add_fault(mode='hang', match='compass/', delay=30)
    body = relay.observe([email(VALUE)])
    assert [s['id'] for s in docs(body, 'sightings')] == [sighting_id(r) for r in records(VALUE)]
    assert [e for e in body['errors'] if e['code'] == 'deadline exceeded']
    assert len(compass_calls(spycloud)) >= 1


def test_pivot_off_makes_no_compass_call(make_relay, spycloud):
    relay = make_relay(compass_pivot=False)
    body = relay.observe([email(VALUE)])
    assert compass_calls(spycloud) == []
    assert [s['id'] for s in docs(body, 'sightings')] == [sighting_id(r) for r in records(VALUE)]
    catalogs = -(-len(data.catalog_ids_for('emails', VALUE)) // 10)
    assert spycloud.stats()['requests'] == 1 + catalogs


def test_devices_are_cached_per_key(make_relay, spycloud):
    relay = make_relay(compass_pivot=True)
    first = relay.observe([email(VALUE)])
    second = relay.observe([email(VALUE)])
    assert len(compass_calls(spycloud)) == 1
    assert docs(first, 'sightings') == docs(second, 'sightings')


def test_a_failing_compass_is_a_warning(pivot, spycloud):
    spycloud.add_fault(500, match='compass/')
    body = pivot.observe([email(VALUE)])
    assert [s['id'] for s in docs(body, 'sightings')] == [sighting_id(r) for r in records(VALUE)]
    assert licence_warnings(body)[0]['code'] == 'unknown'
