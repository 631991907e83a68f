"""``make demo``'s sync: one run into the fake XDR, and the queue it prints drawn from what XDR
holds (the counts from the store, whatever the date)."""

from collections import Counter

import demo
from simulator import DEFAULT_API_KEY, DEFAULT_XDR_CLIENT


def test_the_demo_sync_imports_and_its_queue_lists_every_incident_newest_first(spycloud, xdr):
    done, _ = demo.sync_once(spycloud, xdr)

    incidents = xdr.entities('incident')
    assert done.complete and done.records_read > 0
    assert done.incidents_created == len(incidents) > 0
    rows = demo.queue(xdr)
    assert len(rows) == len(incidents)
    assert Counter(row[1] for row in rows) == Counter(i['title'] for i in incidents)
    member_of = [r for r in xdr.entities('relationship') if r['relationship_type'] == 'member-of']
    assert sum(row[4] for row in rows) == len(member_of) == done.sightings_created
    opened = [row[3] for row in rows]
    assert opened == sorted(opened, reverse=True)
    assert {row[2] for row in rows} == {'New'}


def test_the_demo_queue_table_is_short_and_holds_no_secret(spycloud, xdr):
    demo.sync_once(spycloud, xdr)
    rows = demo.queue(xdr)

    table = demo.queue_table(rows, limit=5)

    lines = table.splitlines()
    assert len(lines) == 1 + min(5, len(rows)) + (len(rows) > 5)
    if len(rows) > 5:
        assert lines[-1] == f'  … and {len(rows) - 5} more'
    assert DEFAULT_XDR_CLIENT[1] not in table and DEFAULT_API_KEY not in table
