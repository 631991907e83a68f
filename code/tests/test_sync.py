"""``relay sync`` end to end over HTTP: the SpyCloud simulator's watchlist into the fake XDR
(simulator/xdr.py), through ``sync.service.run_once`` and through the command. What the runs
should import is counted from the simulator's tenant for the run's window (its checkpoint), so
the tests hold whatever the date."""

import json
import logging
import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator import DEFAULT_API_KEY, DEFAULT_XDR_CLIENT, tenant
from spycloud_relay import cli
from spycloud_relay.config import Settings
from spycloud_relay.spycloud.models import BreachRecord
from spycloud_relay.sync.incidents import external_id, modification_stamp
from spycloud_relay.sync.service import run_once
from spycloud_relay.sync.settings import SyncSettings

STAMP = '%Y-%m-%dT%H:%M:%SZ'
SEVERITIES = (20, 25, 26, 30)
PREFIX = 'spycloud-relay'
CLIENT_ID, CLIENT_PASSWORD = DEFAULT_XDR_CLIENT
TYPES = ('incident', 'sighting', 'indicator', 'relationship')


# -- running a sync --------------------------------------------------------------------------


def sync_env(spycloud, xdr, tmp_path, **extra):
    """The command's environment: the simulators, a checkpoint file of the test's, no Redis."""
    env = {
        'SPYCLOUD_API_URL': spycloud.url,
        'SPYCLOUD_API_KEY': DEFAULT_API_KEY,
        'XDR_API_URL': xdr.url,
        'XDR_CLIENT_ID': CLIENT_ID,
        'XDR_CLIENT_PASSWORD': CLIENT_PASSWORD,
        'SYNC_CHECKPOINT_FILE': str(tmp_path / 'sync.json'),
        'REDIS_URL': '',
        'SPYCLOUD_BACKOFF_S': '0.01',
        'SPYCLOUD_RATE_LIMIT': '0',
    }
    env.update({name: str(value) for name, value in extra.items()})
    return env


def command(env, *args):
    """``relay sync ARGS`` in this process (CliRunner): its result, stdout and stderr apart."""
    return CliRunner().invoke(cli.cli, ['sync', *args], env=env, catch_exceptions=False)


def last_json(result):
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1])


def once(env, *, dry_run=False, progress=lambda line: None, out=lambda line: None):
    """``run_once`` with the settings the command would read from ``env``."""
    return run_once(
        Settings.from_env(env),
        SyncSettings.from_env(env),
        dry_run=dry_run,
        progress=progress,
        out=out,
    )


# -- what should be imported -----------------------------------------------------------------


def moment(stamp):
    return datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)


def tenant_records(since, until):
    """The tenant's records of the synced severities modified from ``since`` to ``until``."""
    naive = [m.astimezone(UTC).replace(tzinfo=None) for m in (since, until)]
    today = datetime.now(UTC).date()
    return [r for r in tenant.modified(today, *naive) if r['severity'] in SEVERITIES]


def first_window(checkpoint, days=7):
    until = moment(checkpoint)
    return tenant_records(until - timedelta(days=days), until)


def group_key(record):
    """The incident a record belongs to, as the issue defines the grouping."""
    machine = record.get('infected_machine_id')
    if record['severity'] in (26, 30):
        return ('session', machine or record['email'])
    if record['severity'] == 25 and machine:
        return ('machine', machine)
    return ('account', record['email'].lower(), record['source_id'])


def expected_counts(records):
    return {
        'incident': len({group_key(r) for r in records}),
        'sighting': len(records),
        'indicator': len({r['source_id'] for r in records}),
        'relationship': 2 * len(records),  # member-of its incident, sighting-of its source
    }


def stored_counts(xdr):
    return {kind: len(xdr.entities(kind)) for kind in TYPES}


def sighting_ids(records):
    """The external ids the records' sightings must carry (a record as modified)."""
    made = (BreachRecord.from_api(r) for r in records)
    return {external_id(PREFIX, 'sighting', r.document_id, modification_stamp(r)) for r in made}


def stored_sighting_ids(xdr):
    return {e['external_ids'][0] for e in xdr.entities('sighting')}


def assert_each_external_id_once(xdr):
    found = Counter(e['external_ids'][0] for kind in TYPES for e in xdr.entities(kind))
    assert found and max(found.values()) == 1, found.most_common(3)


def imports(xdr):
    return [e for e in xdr.request_log if e['endpoint'] == 'import']


def watchlist_calls(spycloud):
    return [e for e in spycloud.request_log if e['endpoint'] == 'watchlist-records']


def like(record, **fields):
    """A new record for ``publish``: ``record``'s account and source, its own id and dates."""
    own = ('document_id', 'spycloud_publish_date', 'record_modification_date')
    copied = {k: v for k, v in record.items() if k not in own and k != 'record_cracked_date'}
    return {**copied, **fields}


# -- 1, 2: a first run imports, a second one imports nothing ---------------------------------


def test_a_first_run_imports_the_window_and_a_second_run_nothing(spycloud, xdr, tmp_path):
    env = sync_env(spycloud, xdr, tmp_path)
    first = command(env, '--once')
    assert first.exit_code == 0, first.output
    summary = last_json(first)
    records = first_window(summary['checkpoint'])
    counts = expected_counts(records)
    assert records and stored_counts(xdr) == counts
    assert stored_sighting_ids(xdr) == sighting_ids(records)
    assert_each_external_id_once(xdr)
    assert summary['records_read'] == len(records) and summary['errors'] == 0
    assert summary['incidents_created'] == counts['incident']
    assert summary['sightings_created'] == counts['sighting']
    assert summary['entities_created'] == sum(counts.values())
    assert summary['xdr_requests'] == len(xdr.request_log) == 1 + len(imports(xdr))
    for entry in imports(xdr):
        assert entry['query'] == {'external-key-prefixes': [PREFIX]} and entry['status'] == 200
    assert all(e['external_ids'][0].startswith(f'{PREFIX}-') for e in xdr.entities('incident'))

    spycloud.reset_stats()
    log_before = len(xdr.request_log)
    second = command(env, '--once')
    assert second.exit_code == 0, second.output
    again = last_json(second)
    assert len(xdr.request_log) == log_before  # no import, not even a token
    assert len(watchlist_calls(spycloud)) == 1
    assert again['records_read'] == 0 and again['entities_created'] == 0
    assert stored_counts(xdr) == counts
    assert moment(again['checkpoint']) >= moment(summary['checkpoint'])


# -- 3: records published or modified between two runs ---------------------------------------


def test_records_published_or_modified_between_runs_join_or_open_incidents(spycloud, xdr, tmp_path):
    env = sync_env(spycloud, xdr, tmp_path)
    first = once(env)
    assert first.complete, first
    records = first_window(first.checkpoint)
    accounts = [r for r in records if r['severity'] == 20]
    before = stored_counts(xdr)

    spycloud.publish(
        [like(accounts[0], password='pub-Secret-1', password_plaintext='pub-Secret-1')]
    )
    joined = once(env)
    assert joined.complete  # records_read may count again one of the checkpoint's second
    assert (joined.sightings_created, joined.incidents_created) == (1, 0)
    assert joined.incidents_existing >= 1  # its incident, answered `exists`
    after_join = stored_counts(xdr)
    assert after_join == {
        **before,
        'sighting': before['sighting'] + 1,
        'relationship': before['relationship'] + 2,
    }

    spycloud.publish([like(accounts[0], email='newcomer@example.org', email_username='newcomer')])
    opened = once(env)
    assert opened.complete
    assert (opened.sightings_created, opened.incidents_created) == (1, 1)
    after_open = stored_counts(xdr)
    assert after_open['incident'] == before['incident'] + 1
    assert after_open['sighting'] == before['sighting'] + 2

    changed = spycloud.modify(accounts[-1]['document_id'], password='mod-Secret-2')
    modified = once(env)
    assert modified.complete
    assert (modified.sightings_created, modified.incidents_created) == (1, 0)
    assert modified.incidents_existing >= 1
    final = stored_counts(xdr)
    assert final['incident'] == after_open['incident']
    assert final['sighting'] == after_open['sighting'] + 1
    assert sighting_ids([changed]) <= stored_sighting_ids(xdr)
    assert sighting_ids([accounts[-1]]) <= stored_sighting_ids(xdr)  # the first one stays
    assert_each_external_id_once(xdr)


# -- 4: a crash between two bundles ----------------------------------------------------------


def test_a_bundle_refused_mid_window_fails_the_run_and_the_next_run_resumes(
    spycloud, xdr, tmp_path
):
    env = sync_env(spycloud, xdr, tmp_path, SYNC_BUNDLE_MAX=40)
    refusal = {'error': 'bundle refused by the test'}
    xdr.add_fault(400, match='bundle/import', times=1, after=1, body=refusal)
    failed = command(env, '--once')
    assert failed.exit_code == 1, failed.output
    summary = last_json(failed)
    assert summary['failure'].startswith('xdr bad request: XDR refused the bundle import')
    assert 'HTTP 400' in summary['failure'] and 'Traceback' not in failed.output
    assert summary['checkpoint'] is None and not (tmp_path / 'sync.json').exists()
    assert [e['status'] for e in imports(xdr)] == [200, 400]  # nothing after the refusal
    first_bundle = sum(stored_counts(xdr).values())

    resumed = command(env, '--once')
    assert resumed.exit_code == 0, resumed.output
    done = last_json(resumed)
    records = first_window(done['checkpoint'])
    assert stored_counts(xdr) == expected_counts(records)
    assert stored_sighting_ids(xdr) == sighting_ids(records)
    assert_each_external_id_once(xdr)
    assert done['entities_existing'] >= first_bundle > 0  # sent again, answered `exists`
    assert done['bundles'] > 2


def test_a_failure_in_a_later_window_keeps_the_checkpoint_at_the_last_clean_window(
    spycloud, xdr, tmp_path
):
    spycloud.watchlist_max_days = 3  # seven days: asked in two halves
    sample = tenant_records(datetime.now(UTC) - timedelta(days=7), datetime.now(UTC))[0]
    spycloud.publish([like(sample)])  # the newer half holds a record, whatever the date
    env = sync_env(spycloud, xdr, tmp_path)
    ends = []

    def refuse_from_now_on(line):
        ends.append(line)
        xdr.add_fault(500, match='bundle/import', times=1, after=0)
        xdr.add_fault(400, match='bundle/import')

    summary = once(env, progress=refuse_from_now_on)
    assert summary.failure is not None and 'HTTP 400' in summary.failure
    assert summary.windows == 1 and len(ends) == 1
    kept = json.loads((tmp_path / 'sync.json').read_text())['checkpoint']
    assert kept.replace('+00:00', 'Z') == summary.checkpoint
    calls = watchlist_calls(spycloud)
    assert calls[-1]['query']['since_modification_date'] == [summary.checkpoint]  # the 2nd half

    xdr.clear_faults()
    spycloud.reset_stats()
    resumed = once(env)
    assert resumed.complete, resumed
    (first_call, *_) = watchlist_calls(spycloud)
    assert first_call['query']['since_modification_date'] == [summary.checkpoint]
    assert_each_external_id_once(xdr)


# -- 5: two syncs at once --------------------------------------------------------------------


def test_two_syncs_on_one_redis_one_runs_and_the_other_skips(spycloud, xdr, tmp_path, fresh_redis):
    env = sync_env(spycloud, xdr, tmp_path, REDIS_URL=fresh_redis.url)
    inside, release = threading.Event(), threading.Event()
    outcome = {}

    def held(line):  # the first sync, between its window's imports and its checkpoint
        inside.set()
        release.wait(30)

    first = threading.Thread(target=lambda: outcome.update(summary=once(env, progress=held)))
    first.start()
    try:
        assert inside.wait(30)
        seen_by_xdr, seen_by_spycloud = len(xdr.request_log), len(spycloud.request_log)
        second = command(env, '--once')
        assert (len(xdr.request_log), len(spycloud.request_log)) == (
            seen_by_xdr,
            seen_by_spycloud,
        )
    finally:
        release.set()
        first.join(30)
    assert second.exit_code == 0, second.output
    skipped = last_json(second)
    assert skipped['skipped'] == 'another sync is running: nothing done'
    assert skipped['entities_created'] == skipped['records_read'] == 0
    summary = outcome['summary']
    assert summary.complete
    assert stored_counts(xdr) == expected_counts(first_window(summary.checkpoint))
    assert_each_external_id_once(xdr)

    after = command(env, '--once')  # the lock given back; the checkpoint in Redis
    assert after.exit_code == 0 and last_json(after)['skipped'] is None
    assert last_json(after)['entities_created'] == 0


# -- 6: a token that expires mid-run ---------------------------------------------------------


def test_a_token_expired_between_windows_is_renewed_once(spycloud, xdr, tmp_path):
    spycloud.watchlist_max_days = 3
    now = datetime.now(UTC)
    sample = tenant_records(now - timedelta(days=7), now)[0]
    older = (now - timedelta(days=6)).strftime(STAMP)
    published = spycloud.publish(
        [like(sample, record_modification_date=older), like(sample)]  # one in each half
    )
    env = sync_env(spycloud, xdr, tmp_path)
    expired = []

    def expire_once(line):
        if not expired:
            xdr.expire_tokens()
            expired.append(line)

    summary = once(env, progress=expire_once)
    assert summary.complete and summary.windows == 2, summary
    assert xdr.count('token') == 2
    assert [e['status'] for e in imports(xdr)].count(401) == 1
    records = first_window(summary.checkpoint) + published
    assert stored_sighting_ids(xdr) == sighting_ids(records)
    assert_each_external_id_once(xdr)


# -- 7: SpyCloud's 429 and 504 ---------------------------------------------------------------


def test_spycloud_throttling_and_timeouts_are_ridden_out(spycloud, xdr, tmp_path):
    spycloud.watchlist_max_days = 2
    spycloud.throttle(times=1, match='breach/data/watchlist')
    spycloud.throttle(times=1, match='breach/catalog')
    env = sync_env(spycloud, xdr, tmp_path, SPYCLOUD_RATE_LIMIT=100, SPYCLOUD_RATE_FLOOR=50)
    result = command(env, '--once')
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    records = first_window(summary['checkpoint'])
    assert stored_sighting_ids(xdr) == sighting_ids(records)
    assert stored_counts(xdr) == expected_counts(records)
    assert_each_external_id_once(xdr)
    statuses = Counter(e['status'] for e in spycloud.request_log)
    assert statuses[429] == 2 and statuses[504] >= 1
    assert summary['windows'] >= 4  # seven days in windows of at most two


# -- 8, 9: bundles under the limit; a dry run ------------------------------------------------


def bundle_ids(bundle):
    return {e['id'] for key in ('incidents', 'sightings', 'indicators') for e in bundle[key]}


def test_a_run_bigger_than_the_bundle_limit_is_split_each_link_with_its_ends(
    spycloud, xdr, tmp_path
):
    env = sync_env(spycloud, xdr, tmp_path, SYNC_BUNDLE_MAX=25)
    dry = command(env, '--dry-run')
    bundles = [json.loads(line) for line in dry.stdout.splitlines()[:-1]]
    assert len(bundles) > 1
    for bundle in bundles:
        size = sum(len(bundle[key]) for key in ('incidents', 'sightings', 'indicators'))
        assert size + len(bundle['relationships']) <= 25
        for link in bundle['relationships']:
            assert {link['source_ref'], link['target_ref']} <= bundle_ids(bundle)

    xdr.entity_limit = 25  # a bundle over it would be refused whole
    result = command(env, '--once')
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary['errors'] == 0 and summary['bundles'] == len(imports(xdr)) > 1
    assert all(e['status'] == 200 and e['entities'] <= 25 for e in imports(xdr))
    assert stored_counts(xdr) == expected_counts(first_window(summary['checkpoint']))
    assert_each_external_id_once(xdr)


def test_a_dry_run_prints_its_bundles_and_sends_nothing(spycloud, xdr, tmp_path):
    env = sync_env(spycloud, xdr, tmp_path, SYNC_BUNDLE_MAX=100)
    result = command(env, '--dry-run')
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    summary = json.loads(lines[-1])
    bundles = [json.loads(line) for line in lines[:-1]]
    assert summary['dry_run'] is True and summary['bundles'] == len(bundles) > 1
    assert all(bundle['type'] == 'bundle' for bundle in bundles)
    assert sum(len(b['sightings']) for b in bundles) == summary['records_read'] > 0
    assert summary['entities_created'] == 0 and summary['checkpoint'] is None
    assert xdr.request_log == []  # not even a token
    assert not (tmp_path / 'sync.json').exists()

    spycloud.reset_stats()
    real = command(env, '--once')  # starts where the dry run started: SYNC_LOOKBACK_DAYS back
    assert real.exit_code == 0, real.output
    (call,) = watchlist_calls(spycloud)
    since = moment(call['query']['since_modification_date'][0])
    assert since == moment(last_json(real)['checkpoint']) - timedelta(days=7)


# -- 10: no secret anywhere ------------------------------------------------------------------


def test_no_secret_in_what_xdr_stores_what_the_command_prints_or_logs(
    spycloud, xdr, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    now = datetime.now(UTC)
    sample = tenant_records(now - timedelta(days=7), now)[0]
    secret = 'Pl41n-Secret-of-the-test'
    spycloud.publish(
        [
            like(sample, password=secret, password_plaintext=secret),
            like(
                sample,
                severity=26,
                infected_machine_id='machine-of-the-test',
                target_url='https://alice:Url-Pa55word@login.example.net/x?token=Url-T0ken',
                cookie_name='sid',
                cookie_value='Session-C00kie',
                log_data={'password': 'Nested-Secret-1', 'session_id': 'Session-1d'},
            ),
        ]
    )
    env = sync_env(spycloud, xdr, tmp_path, SYNC_BUNDLE_MAX=40)
    dry = command(env, '--dry-run')
    xdr.throttle(times=1, retry_after=0.01, match='bundle/import')
    xdr.add_fault(400, match='bundle/import', times=1, after=1)
    failed = command(env, '--once')
    xdr.expire_tokens()
    done = command(env, '--once')
    assert (dry.exit_code, failed.exit_code, done.exit_code) == (0, 1, 0), done.output
    records = first_window(last_json(done)['checkpoint'])
    secrets = {r[k] for r in records for k in ('password', 'password_plaintext') if r.get(k)}
    secrets |= {
        secret,
        'Url-Pa55word',
        'Url-T0ken',
        'Nested-Secret-1',
        'Session-C00kie',
        'Session-1d',
    }
    secrets |= {DEFAULT_API_KEY, CLIENT_PASSWORD}
    secrets |= {e['token'] for e in xdr.request_log if e['token']}
    stored = json.dumps([xdr.entities(kind) for kind in TYPES])
    printed = [
        (name, run.stdout + run.stderr)
        for name, run in [('dry', dry), ('failed', failed), ('done', done)]
    ]
    for where, text in [('XDR', stored), ('the log', caplog.text), *printed]:
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f'{where} holds {leaked[:3]}'
    assert len(secrets) > 10


# -- 11: bad settings and bad usage ----------------------------------------------------------


@pytest.mark.parametrize(
    'change, named',
    [
        ({'XDR_CLIENT_PASSWORD': None}, 'XDR_CLIENT_PASSWORD'),
        ({'XDR_CLIENT_ID': ' '}, 'XDR_CLIENT_ID'),
        ({'SPYCLOUD_API_KEY': None}, 'SPYCLOUD_API_KEY'),
        ({'SYNC_TLP': 'purple'}, 'SYNC_TLP'),
        ({'SYNC_SEVERITIES': '20,99'}, 'SYNC_SEVERITIES'),
        ({'SYNC_BUNDLE_MAX': 'many'}, 'SYNC_BUNDLE_MAX'),
        ({'SYNC_LOOKBACK_DAYS': '0'}, 'SYNC_LOOKBACK_DAYS'),
        ({'SYNC_WINDOW_DAYS': '366'}, 'SYNC_WINDOW_DAYS'),
        ({'SYNC_WINDOW_PAGES': '0'}, 'SYNC_WINDOW_PAGES'),
        ({'SYNC_PASSWORD_MIN_LENGTH': '-1'}, 'SYNC_PASSWORD_MIN_LENGTH'),
        ({'SYNC_PASSWORD_MIN_LENGTH': 'twelve'}, 'SYNC_PASSWORD_MIN_LENGTH'),
        ({'SYNC_PASSWORD_REQUIRE_SYMBOL': 'maybe'}, 'SYNC_PASSWORD_REQUIRE_SYMBOL'),
        ({'XDR_API_URL': 'http://xdr.example.com'}, 'XDR_API_URL'),
        ({'SPYCLOUD_API_URL': 'ftp://spycloud.example'}, 'SPYCLOUD_API_URL'),
        ({'REDIS_URL': 'http://user:Redis-Pa55@redis.example'}, 'REDIS_URL'),
    ],
)
def test_a_bad_or_missing_setting_is_one_line_naming_it(spycloud, xdr, tmp_path, change, named):
    env = {**sync_env(spycloud, xdr, tmp_path), **change}
    result = command(env, '--once')
    assert result.exit_code == 3, result.output
    (line,) = result.stderr.strip().splitlines()
    assert named in line and 'Traceback' not in result.output and result.stdout == ''
    assert CLIENT_PASSWORD not in result.output and 'Redis-Pa55' not in result.output
    assert xdr.request_log == [] and spycloud.request_log == []


@pytest.mark.parametrize(
    'args', [('--every', '5s'), ('--every', '15m', '--dry-run'), ('--every', '15m', '--once')]
)
def test_bad_usage_is_refused_before_anything_runs(spycloud, xdr, tmp_path, args):
    result = command(sync_env(spycloud, xdr, tmp_path), *args)
    assert result.exit_code == 2, result.output
    assert 'Traceback' not in result.output and result.stdout == ''
    assert xdr.request_log == [] and spycloud.request_log == []


# -- a long first run, window by window -------------------------------------------------------


def test_a_long_lookback_is_imported_window_by_window_each_checkpointed(spycloud, xdr, tmp_path):
    """21 days in windows of at most 7: each window imported and its end checkpointed before
    the next is asked, so a failure in the second keeps the first; the next run resumes there
    and the whole span ends up in XDR once."""
    env = sync_env(spycloud, xdr, tmp_path, SYNC_LOOKBACK_DAYS=21, SYNC_WINDOW_DAYS=7)
    ends = []

    def refuse_after_the_first_window(line):
        ends.append(line)
        xdr.add_fault(400, match='bundle/import')

    failed = once(env, progress=refuse_after_the_first_window)
    assert failed.failure is not None and 'HTTP 400' in failed.failure
    assert failed.windows == 1 and len(ends) == 1
    (first_call, *_) = watchlist_calls(spycloud)
    since = moment(first_call['query']['since_modification_date'][0])
    first_end = moment(first_call['query']['until_modification_date'][0])
    assert first_end - since == timedelta(days=7)
    assert failed.checkpoint == first_end.strftime(STAMP)
    kept = json.loads((tmp_path / 'sync.json').read_text())['checkpoint']
    assert datetime.fromisoformat(kept) == first_end
    assert failed.records_read == len(tenant_records(since, first_end))

    xdr.clear_faults()
    spycloud.reset_stats()
    resumed = once(env)
    assert resumed.complete, resumed
    asked = [
        tuple(moment(c['query'][f'{end}_modification_date'][0]) for end in ('since', 'until'))
        for c in watchlist_calls(spycloud)
        if 'cursor' not in c['query']
    ]
    assert len(asked) == resumed.windows >= 2
    assert asked[0][0] == first_end and asked[-1][1] == moment(resumed.checkpoint)
    for (start, end), (following, _) in zip(asked, asked[1:] + [(asked[-1][1], None)], strict=True):
        assert timedelta(0) < end - start <= timedelta(days=7) and following == end
    records = tenant_records(since, moment(resumed.checkpoint))
    assert stored_counts(xdr) == expected_counts(records)
    assert_each_external_id_once(xdr)


# -- the password policy of the incidents' sightings ------------------------------------------


def policy_cells(xdr):
    """Every stored sighting's ``password_policy`` cell (its data table has one row)."""
    cells = []
    for doc in xdr.entities('sighting'):
        names = [column['name'] for column in doc['data']['columns']]
        cells += [row[names.index('password_policy')] for row in doc['data']['rows']]
    return cells


@pytest.mark.parametrize(
    ('length', 'symbol', 'shown', 'never'),
    [
        ('0', 'false', 'not checked (no policy)', ('too short', 'meets policy', 'no symbol')),
        ('256', 'true', 'too short (', ('meets policy', 'not checked')),
        ('1', 'yes', 'no symbol', ('too short', 'not checked')),
    ],
)
def test_the_sightings_check_passwords_against_the_sync_policy(
    spycloud, xdr, tmp_path, length, symbol, shown, never
):
    env = sync_env(
        spycloud,
        xdr,
        tmp_path,
        SYNC_PASSWORD_MIN_LENGTH=length,
        SYNC_PASSWORD_REQUIRE_SYMBOL=symbol,
    )
    assert once(env).complete
    cells = policy_cells(xdr)
    assert len(cells) == len(xdr.entities('sighting')) > 0
    assert any(cell.startswith(shown) for cell in cells)
    assert not [cell for cell in cells if any(word in cell for word in never)]
    checked = [c for c in cells if not c.startswith(('no password', 'unknown'))]
    assert checked and all(c.startswith(shown) or c == 'meets policy' for c in checked)


# -- 12: a file checkpoint -------------------------------------------------------------------


def test_the_next_run_starts_at_the_file_checkpoint_of_the_last(spycloud, xdr, tmp_path):
    env = sync_env(spycloud, xdr, tmp_path, SYNC_LOOKBACK_DAYS=2)
    first = command(env, '--once')
    assert first.exit_code == 0, first.output
    checkpoint = last_json(first)['checkpoint']
    stored = json.loads((tmp_path / 'sync.json').read_text())
    assert moment(checkpoint) == datetime.fromisoformat(stored['checkpoint'])
    spycloud.reset_stats()
    second = command(env, '--once')
    assert second.exit_code == 0, second.output
    (call,) = watchlist_calls(spycloud)
    assert call['query']['since_modification_date'] == [checkpoint]
    assert moment(call['query']['until_modification_date'][0]) == moment(
        last_json(second)['checkpoint']
    )


# -- what XDR refuses ------------------------------------------------------------------------


def test_a_breach_source_with_an_overlong_title_still_imports(spycloud, xdr, tmp_path):
    """A catalog's title is SpyCloud's (whoever fed the breach): one over CTIM's 1024
    characters made XDR refuse the indicator and its links on every run, the checkpoint stuck."""
    now = datetime.now(UTC)
    sample = tenant_records(now - timedelta(days=7), now)[0]
    long = {'title': 'T' * 3000, 'description': 'D' * 9000}
    spycloud.catalog_overrides = {sample['source_id']: long}
    result = command(sync_env(spycloud, xdr, tmp_path), '--once')
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary['errors'] == 0 and summary['checkpoint'] is not None
    assert stored_counts(xdr) == expected_counts(first_window(summary['checkpoint']))
    assert all(len(e['title']) <= 1024 for e in xdr.entities('indicator'))


# XDR's answer to an import whose one sighting it refused (``result: error``).
REFUSED_SIGHTING = json.dumps(
    {
        'results': [
            {
                'type': 'sighting',
                'original_id': 'transient:sighting-x',
                'result': 'error',
                'error': 'invalid',
                'msg': 'count must be a positive integer',
                'external_ids': [f'{PREFIX}-sighting-refused'],
            }
        ]
    }
).encode()


def test_an_entity_xdr_refuses_is_logged_and_holds_the_checkpoint(spycloud, xdr, tmp_path, caplog):
    xdr.add_fault(200, match='bundle/import', mode='raw', body=REFUSED_SIGHTING, times=1)
    env = sync_env(spycloud, xdr, tmp_path)
    failed = command(env, '--once')
    assert failed.exit_code == 1, failed.output
    summary = last_json(failed)
    assert summary['errors'] == 1 and summary['checkpoint'] is None
    assert not (tmp_path / 'sync.json').exists()
    (line,) = [
        r.getMessage() for r in caplog.records if f'{PREFIX}-sighting-refused' in r.getMessage()
    ]
    assert 'count must be a positive integer' in line and 'sighting' in line
    assert command(env, '--once').exit_code == 0
    assert (tmp_path / 'sync.json').exists()


def test_the_command_logs_json_lines_at_its_log_level(spycloud, xdr, tmp_path):
    """The installed ``relay sync`` logs as the relay does: one JSON object a line on standard
    error, at LOG_LEVEL; its standard output ends with the summary."""
    relay = Path(sys.executable).with_name('relay')  # the package's [project.scripts] entry

    def run(level):
        xdr.add_fault(200, match='bundle/import', mode='raw', body=REFUSED_SIGHTING, times=1)
        env = {**os.environ, **sync_env(spycloud, xdr, tmp_path, LOG_LEVEL=level)}
        return subprocess.run(
            [str(relay), 'sync', '--once'], env=env, capture_output=True, text=True, timeout=120
        )

    logged = run('info')
    assert logged.returncode == 1, logged.stderr
    lines = [json.loads(line) for line in logged.stderr.strip().splitlines()]
    (refusal,) = [line for line in lines if f'{PREFIX}-sighting-refused' in line['message']]
    assert refusal['level'] == 'WARNING' and refusal['logger'].startswith('spycloud_relay.sync')
    assert json.loads(logged.stdout.strip().splitlines()[-1])['errors'] == 1
    quiet = run('error')
    assert quiet.returncode == 1 and quiet.stderr == ''
