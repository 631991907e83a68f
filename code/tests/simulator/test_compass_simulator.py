"""The simulator's Compass: device records by comma list, paged; summaries; 403; salt."""

import datetime

import pytest
import requests

from simulator import DEFAULT_API_KEY, SpyCloudSimulator, compass, data, tenant

KEY = {'X-API-Key': DEFAULT_API_KEY}


@pytest.fixture
def sim():
    with SpyCloudSimulator(page_size=100) as server:
        yield server


def get(sim, path, **params):
    return requests.get(sim.url + path, params=params, headers=KEY, timeout=5)


def drain(sim, path, **params):
    records, response = [], get(sim, path, **params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        records += body['results']
        if not body['cursor']:
            return records
        response = get(sim, path, cursor=body['cursor'])


def machines(value):
    named = (r.get('infected_machine_id') for r in data.records_for('emails', value))
    return list(dict.fromkeys(m for m in named if m))


def test_a_comma_list_answers_every_machines_records():
    ids = machines('r50c5@acme.example')
    assert len(ids) == 3
    expected = compass.records_of(','.join(ids))
    assert {r['infected_machine_id'] for r in expected} == set(ids)
    assert len(expected) == sum(compass.size(m) for m in ids)
    with SpyCloudSimulator() as sim:
        assert drain(sim, 'compass/data/devices/' + ','.join(ids)) == expected


def test_a_big_machine_is_paged(sim):
    (machine,) = machines('r4c2-dev300@acme.example')
    found = drain(sim, f'compass/data/devices/{machine}')
    assert len(found) == compass.size(machine) == 300
    assert len({r['document_id'] for r in found}) == 300
    assert sim.stats()['by_endpoint']['compass-device-records'] == 3


def test_observed_records_carry_their_machines_profile():
    for record in data.records_for('emails', 'r50c5@acme.example'):
        if record['severity'] >= 25:
            facts = compass.profile(record['infected_machine_id'])
            assert record['user_hostname'] == facts['user_hostname']
            assert record['user_os'] == facts['user_os']
            assert record.get('mac_address') == facts.get('mac_address')


def test_unverified_records_are_masked():
    (machine,) = machines('r4c2-dev300@acme.example')
    unverified = [r for r in compass.records(machine) if r.get('type') == 'unverified']
    assert len(unverified) == 100
    for record in unverified:
        assert record['password'] == record['password_plaintext'] == '********'
        assert '*' in record['email_username'] and record['email'].startswith(
            record['email_username'][0]
        )


def test_a_key_without_compass_gets_403(sim):
    sim.compass_denied = {DEFAULT_API_KEY}
    response = get(sim, 'compass/data/devices/ABC')
    assert response.status_code == 403
    assert 'explicit deny' in response.json()['message']
    assert get(sim, 'breach/catalog/1').status_code == 200


def test_salt_is_checked(sim):
    assert get(sim, 'compass/data/devices/ABC', salt='short').status_code == 400
    assert get(sim, 'compass/data/devices/ABC', salt='0123456789abcdef').status_code == 200


def test_devices_lists_the_tenants_machines(sim):
    for _ in range(2):  # asked again if midnight (UTC) passed meanwhile: the tenant moved
        today = datetime.datetime.now(datetime.UTC).date()
        since = today - datetime.timedelta(days=7)
        found = drain(sim, 'compass/devices', since=since.isoformat())
        if datetime.datetime.now(datetime.UTC).date() == today:
            break
    infected = {
        r['infected_machine_id']
        for r in tenant.select(today, datetime.datetime.combine(since, datetime.time()), None)
        if r['severity'] >= 25
    }
    assert {d['infected_machine_id'] for d in found} == infected
    for device in found:
        facts = compass.profile(device['infected_machine_id'])
        assert device['user_hostname'] == facts['user_hostname']
        assert device['application_count'] == len(
            {r['target_domain'] for r in compass.records(device['infected_machine_id'])}
        )


def test_devices_of_a_window_are_its_machines_dated_within_it(sim):
    """since and until both: a machine is listed when it has a record in the window, dated by
    its newest record there (not by newer records after ``until``)."""
    for _ in range(2):  # asked again if midnight (UTC) passed meanwhile: the tenant moved
        today = datetime.datetime.now(datetime.UTC).date()
        since, until = today - datetime.timedelta(days=40), today - datetime.timedelta(days=20)
        found = drain(sim, 'compass/devices', since=since.isoformat(), until=until.isoformat())
        if datetime.datetime.now(datetime.UTC).date() == today:
            break
    window = tenant.select(
        today,
        datetime.datetime.combine(since, datetime.time()),
        datetime.datetime.combine(until, datetime.time()),
    )
    newest = {}
    for record in window:
        if record['severity'] >= 25:
            machine, stamp = record['infected_machine_id'], record['spycloud_publish_date']
            newest[machine] = max(newest.get(machine, stamp), stamp)
    assert (
        newest and {d['infected_machine_id']: d['spycloud_publish_date'] for d in found} == newest
    )
    # some of them have newer records after the window: dated by the window's all the same
    later = {
        r['infected_machine_id']
        for r in tenant.select(today, None, None)
        if r['severity'] >= 25 and r['spycloud_publish_date'] > f'{until}T00:00:00Z'
    }
    assert later & set(newest)
    stamps = [d['spycloud_publish_date'] for d in found]
    assert stamps == sorted(stamps, reverse=True)
