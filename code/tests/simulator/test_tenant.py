"""The demo tenant has the same shape on every day: a test that counts calls or records over
"the last 30 days" must hold whatever the date (the suite runs on other days: make test-dates)."""

import datetime

import pytest

from simulator import tenant

pytestmark = pytest.mark.pure  # no server: `make test-fast` runs it

DAYS = [datetime.date(2026, 12, 4), datetime.date(2027, 3, 1), datetime.date(2028, 2, 29)]


def by_age(today):
    """{days before today: the records of that day, without their dates}."""
    return {
        (today - day).days: [
            {k: v for k, v in record.items() if k != 'spycloud_publish_date'} for record in records
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
