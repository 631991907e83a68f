"""The demo tenant has the same shape on every day: a test that counts calls or records over
"the last 30 days" must hold whatever the date (the suite runs on other days: make test-dates)."""

import datetime

import pytest

from simulator import tenant

pytestmark = pytest.mark.pure  # no server: `make test-fast` runs it

DAYS = [datetime.date(2026, 12, 4), datetime.date(2027, 3, 1), datetime.date(2028, 2, 29)]


DATED = ('spycloud_publish_date', 'record_modification_date', 'record_cracked_date')


def age(today, stamp):
    """How long before ``today``'s midnight a stamp is (publish and modification dates alike)."""
    moment = datetime.datetime.strptime(stamp, tenant.STAMP)
    return datetime.datetime.combine(today, datetime.time()) - moment


def by_age(today):
    """{days before today: the records of that day, their dates as ages}."""
    return {
        (today - day).days: [
            {k: age(today, v) if k in DATED else v for k, v in record.items()} for record in records
        ]
        for day, records in tenant.records_by_day(today).items()
    }


def test_every_day_sees_the_same_tenant_shifted():
    first, *others = (by_age(day) for day in DAYS)
    assert sum(len(records) for records in first.values()) == tenant.RECORDS
    assert all(other == first for other in others)


def test_the_records_are_dated_relative_to_today():
    for today in DAYS:
        for day, records in tenant.records_by_day(today).items():
            assert 0 <= (today - day).days < tenant.DAYS
            assert {r['spycloud_publish_date'] for r in records} == {f'{day}T00:00:00Z'}


def test_a_share_of_the_records_was_modified_after_publication_and_before_today():
    """Modification dates (what the sync pulls by) are the publish date, or a moment 1 to
    MODIFIED_MAX_DAYS days later and before today: never in the future, whatever the hour."""
    today = DAYS[0]
    midnight = datetime.datetime.combine(today, datetime.time())
    records = [r for day in tenant.records_by_day(today).values() for r in day]
    later = []
    for record in records:
        published = datetime.datetime.strptime(record['spycloud_publish_date'], tenant.STAMP)
        modified = datetime.datetime.strptime(record['record_modification_date'], tenant.STAMP)
        assert published <= modified
        if modified > published:
            later.append(record)
            assert modified < midnight
            assert modified - published < datetime.timedelta(days=tenant.MODIFIED_MAX_DAYS + 1)
    assert 0.5 * tenant.MODIFIED_SHARE < len(later) / len(records) < 2 * tenant.MODIFIED_SHARE
    assert all(
        r['record_cracked_date'] == r['record_modification_date']
        for r in later
        if r['severity'] >= 20
    )


def test_records_are_selected_by_modification_date():
    today = DAYS[1]
    records = [r for day in tenant.records_by_day(today).values() for r in day]
    since = datetime.datetime.combine(today - datetime.timedelta(days=7), datetime.time(6, 30))
    until = datetime.datetime.combine(today - datetime.timedelta(days=1), datetime.time(12))
    found = tenant.modified(today, since, until)
    expected = [
        r
        for r in records
        if since.strftime(tenant.STAMP)
        <= r['record_modification_date']
        <= until.strftime(tenant.STAMP)
    ]
    # by id, not identity: a day's records are made anew once evicted from the cache (on the
    # day the suite runs as this day, an earlier test's index may hold an earlier making)
    assert found and sorted(r['document_id'] for r in found) == sorted(
        r['document_id'] for r in expected
    )
    dates = [r['spycloud_publish_date'] for r in found]
    assert dates == sorted(dates, reverse=True)  # newest published first, as the watchlist answers
    assert any(r['record_modification_date'] != r['spycloud_publish_date'] for r in found)
    assert tenant.by_document(today)[found[0]['document_id']] is found[0]
