"""``make bench``'s sync scenario: ``relay sync --once`` over the simulator's demo tenant.

The command runs in its own process, as a CronJob runs it (the relay's default settings, the
checkpoint in a file, no Redis), against the SpyCloud simulator (its latency, default 50 ms per
call) and the fake XDR (simulator/xdr.py, no latency). Three runs on one checkpoint:

1. a first run over the last 90 days (SYNC_LOOKBACK_DAYS=90);
2. an incremental run after the simulator publishes NEW_RECORDS new records (new accounts);
3. a run with nothing new;

then two first runs over a year (365 days, the longest look-back), each on a fresh checkpoint and
a fresh fake XDR: with the default windows (SYNC_WINDOW_DAYS 30, SYNC_WINDOW_PAGES 10) and as
one window (SYNC_WINDOW_DAYS 365, SYNC_WINDOW_PAGES 100, how the sync pulled before windows):
what the windows bound of the run's memory, and what they cost in calls.

Each reports the records read, SpyCloud calls (the simulator's log, by endpoint), XDR requests
(the fake XDR's log: token and imports), entities created / existing, incidents, wall seconds of
the process (start-up included) and its peak memory: the peak resident set size of the sync's
process (``VmHWM`` of /proc/self/status, written when it exits: ``ru_maxrss`` would count the
pages the child shared with this process between fork and exec), and that peak less the
nothing-new run's peak (the interpreter, the imports and one empty page): what the run's data
cost. Nothing is asserted.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from simulator import DEFAULT_API_KEY, DEFAULT_XDR_CLIENT, XdrSimulator, tenant

LOOKBACK_DAYS = 90
NEW_RECORDS = 20
SEVERITIES = (20, 25, 26, 30)  # SYNC_SEVERITIES' default
OWN = ('document_id', 'spycloud_publish_date', 'record_modification_date', 'record_cracked_date')
CLEARED = ('SPYCLOUD_', 'XDR_', 'SYNC_', 'REDIS_URL', 'METRICS_ENABLED')
# ``relay sync`` (the package's main) with its peak resident set written to argv[1] at exit.
PEAK_RSS_SCRIPT = """
import atexit, sys
peak_file = sys.argv.pop(1)
def peak():
    with open('/proc/self/status') as status:
        found = [line.split()[1] for line in status if line.startswith('VmHWM:')]
    with open(peak_file, 'w') as out:
        out.write(found[0] if found else '0')
atexit.register(peak)
from spycloud_relay.cli import main
main()
"""


def sync_env(spycloud, xdr, checkpoint_file, lookback_days=LOOKBACK_DAYS, **extra):
    """The command's environment: this process's without the relay's settings, the two
    simulators, the look-back (90 days), a checkpoint file of the run's, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    client_id, client_password = DEFAULT_XDR_CLIENT
    env.update(
        SPYCLOUD_API_URL=spycloud.url,
        SPYCLOUD_API_KEY=DEFAULT_API_KEY,
        XDR_API_URL=xdr.url,
        XDR_CLIENT_ID=client_id,
        XDR_CLIENT_PASSWORD=client_password,
        SYNC_LOOKBACK_DAYS=str(lookback_days),
        SYNC_CHECKPOINT_FILE=str(checkpoint_file),
        LOG_LEVEL='WARNING',
        **extra,
    )
    return env


def run_command(env, directory):
    """``relay sync --once`` in a process of its own: (summary, seconds, peak RSS in KiB, exit)."""
    out, err, peak = (Path(directory) / name for name in ('out.txt', 'err.txt', 'peak.txt'))
    command = [sys.executable, '-c', PEAK_RSS_SCRIPT, str(peak), 'sync', '--once']
    with out.open('wb') as stdout, err.open('wb') as stderr:
        started = time.perf_counter()
        code = subprocess.run(command, env=env, stdout=stdout, stderr=stderr, check=False)
        seconds = time.perf_counter() - started
    lines = out.read_text().strip().splitlines()
    if code.returncode != 0 or not lines:
        print(err.read_text()[-2000:], file=sys.stderr)
    summary = json.loads(lines[-1]) if lines else {}
    return summary, seconds, int(peak.read_text() or 0), code.returncode


def counted(spycloud, xdr, run):
    """``run()``'s result and the requests it made to each simulator."""
    spycloud_before, xdr_before = len(spycloud.request_log), len(xdr.request_log)
    result = run()
    spycloud_log = spycloud.request_log[spycloud_before:]
    xdr_log = xdr.request_log[xdr_before:]
    calls = {}
    for entry in spycloud_log:
        calls[entry['endpoint']] = calls.get(entry['endpoint'], 0) + 1
    xdr_calls = {
        kind: sum(1 for entry in xdr_log if entry['endpoint'] == kind)
        for kind in ('token', 'import')
    }
    return result, calls, xdr_calls


def measured(spycloud, xdr, env, directory):
    """One run's row of the table."""
    (summary, seconds, peak_kib, code), calls, xdr_calls = counted(
        spycloud, xdr, lambda: run_command(env, directory)
    )
    return {
        'exit_code': code,
        'records_read': summary.get('records_read'),
        'spycloud_calls': sum(calls.values()),
        'spycloud_calls_by_endpoint': calls,
        'spycloud_calls_summary': summary.get('spycloud_calls'),
        'xdr_token_requests': xdr_calls['token'],
        'xdr_import_requests': xdr_calls['import'],
        'entities_created': summary.get('entities_created'),
        'entities_existing': summary.get('entities_existing'),
        'incidents_created': summary.get('incidents_created'),
        'incidents_existing': summary.get('incidents_existing'),
        'sightings_created': summary.get('sightings_created'),
        'errors': summary.get('errors'),
        'bundles': summary.get('bundles'),
        'seconds': seconds,
        'peak_rss_mib': peak_kib / 1024,
    }


def new_records(count):
    """``count`` records as SpyCloud would publish them next: copies of the tenant's newest of
    the synced severities, each for an account (and an infected machine) of its own, so each
    opens an incident."""
    today = datetime.now(UTC).date()
    until = datetime.now(UTC).replace(tzinfo=None)
    recent = tenant.modified(today, until - timedelta(days=LOOKBACK_DAYS), until)
    synced = [r for r in recent if r['severity'] in SEVERITIES][:count]
    made = []
    for index, record in enumerate(synced):
        copy = {k: v for k, v in record.items() if k not in OWN}
        user = f'bench.new{index}'
        copy.update(email=f'{user}@example.org', email_username=user, email_domain='example.org')
        if 'infected_machine_id' in copy:
            copy['infected_machine_id'] = str(uuid.uuid4())
        made.append(copy)
    return made


def sync_scenario(spycloud):
    """The three runs over one checkpoint, with a fresh fake XDR; their rows, and the peak
    RSS less the nothing-new run's."""
    with XdrSimulator() as xdr, tempfile.TemporaryDirectory(prefix='bench-sync-') as directory:
        env = sync_env(spycloud, xdr, Path(directory) / 'sync.json')
        print(f'sync: a first run over {LOOKBACK_DAYS} days ...', flush=True)
        first = measured(spycloud, xdr, env, directory)
        spycloud.publish(new_records(NEW_RECORDS))
        # The next run starts in a later second than the records' modification: a window
        # includes both its ends, so a record modified in the very second a run starts is
        # read again by the run after it (and imported again: XDR answers ``exists``).
        time.sleep(1.1)
        print(f'sync: {NEW_RECORDS} new records, an incremental run ...', flush=True)
        incremental = measured(spycloud, xdr, env, directory)
        print('sync: a run with nothing new ...', flush=True)
        nothing = measured(spycloud, xdr, env, directory)
        stored = {kind: len(xdr.entities(kind)) for kind in ('incident', 'sighting')}
    runs = {'first_90_days': first, 'incremental_20_new': incremental, 'nothing_new': nothing}
    runs.update(year_runs(spycloud))
    for run in runs.values():
        run['peak_rss_over_nothing_new_mib'] = run['peak_rss_mib'] - nothing['peak_rss_mib']
    return {'latency_ms': spycloud.latency * 1000, 'runs': runs, 'xdr_holds': stored}


YEAR_RUNS = {
    'first_365_days': {},  # the default windows
    'first_365_one_window': {'SYNC_WINDOW_DAYS': '365', 'SYNC_WINDOW_PAGES': '100'},
}


def year_runs(spycloud):
    """A first run over 365 days with the default windows, and as one window."""
    rows = {}
    for name, extra in YEAR_RUNS.items():
        with XdrSimulator() as xdr, tempfile.TemporaryDirectory(prefix='bench-sync-') as directory:
            env = sync_env(spycloud, xdr, Path(directory) / 'sync.json', 365, **extra)
            print(f'sync: {name} ...', flush=True)
            rows[name] = measured(spycloud, xdr, env, directory)
    return rows


def report(sync):
    print(
        f'\n9. relay sync --once over the demo tenant (27,444 records), simulator latency '
        f'{sync["latency_ms"]:g} ms (SpyCloud; the fake XDR has none), checkpoint in a file'
    )
    print(
        f'{"run":>20} {"records":>8} {"SpyCloud":>9} {"XDR tok+imp":>12} {"created":>8} '
        f'{"existing":>9} {"incidents":>10} {"seconds":>8} {"peak RSS":>9} {"over idle":>10}'
    )
    for name, run in sync['runs'].items():
        xdr = f'{run["xdr_token_requests"]}+{run["xdr_import_requests"]}'
        incidents = f'{run["incidents_created"]}+{run["incidents_existing"]}'
        print(
            f'{name:>20} {run["records_read"]:>8} {run["spycloud_calls"]:>9} {xdr:>12} '
            f'{run["entities_created"]:>8} {run["entities_existing"]:>9} {incidents:>10} '
            f'{run["seconds"]:>8.2f} {run["peak_rss_mib"]:>6.1f} MiB '
            f'{run["peak_rss_over_nothing_new_mib"]:>6.1f} MiB'
        )
    print(
        '   (SpyCloud: calls the simulator saw; XDR: token + import requests; incidents: '
        "created + existing;\n    peak RSS: the sync process's VmHWM; over idle: less the "
        "nothing-new run's; seconds include the process's start-up)"
    )
    for name, run in sync['runs'].items():
        print(f'   {name}: SpyCloud calls by endpoint {run["spycloud_calls_by_endpoint"]}')
