"""``make bench``: how fast the relay answers, measured against the SpyCloud simulator.

Runs the relay with gunicorn as in production (gunicorn_conf.py) and the
simulator with a settable latency, then prints a table and writes JSON:

1. cold and warm latency (median) for e-mails of 1/10/100/500 records over 1/5/20/60 sources,
   and the same cold lookup through the serial path (one catalog per call, one call at a
   time, no cache: Cisco's way minus its 250 ms floor), as a ratio measured in the same run;
2. SpyCloud calls per observe, cold and warm, from the simulator's counters, and of them the
   Compass calls of the infected-device pivot (COMPASS_PIVOT, on by default);
3. throughput and p50/p95/p99 latency with N concurrent clients over a mix of sizes;
4. the relay's own time per request at 0 ms simulator latency;
5. the same mix against a simulator that enforces a rate limit: how many answers are complete;
6. /deliberate/observables for 1 and 20 accounts: cold (one filtered call per ten addresses, at
   once) and warm (the records cache), with the SpyCloud calls and the relay's own time; then,
   with lists on and off (SPYCLOUD_EMAIL_BATCH=1) in the same run, a cold deliberate of 20 and
   an observe of 20 whose own records cannot decide their verdicts (min_severity 25);
7. the dashboard: cold last_90_days tile data over the demo tenant (27,444 records), every tile
   warm, the SpyCloud calls, and how much the worker's memory grew while aggregating; the
   infected-devices tiles (Compass) cold and warm, with their calls; then every
   tile asked at the same moment (cold, default budget), on one worker and on two replicas of
   two workers on one Redis: the calls of all against one gathering's, and the partial tiles;
8. two replicas of two workers on one Redis (see replicas_table);
9. ``relay sync --once`` over the demo tenant (bench/sync_bench.py): a first run over 90 days,
   an incremental run after 20 new records, a run with nothing new. ``--only sync`` runs this
   scenario alone.

Scenarios 1-5 run with the records cache off (RECORDS_CACHE_TTL_S=0), so "warm" means what it
meant before it existed: breach sources cached, records asked again.

The machine is shared and noisy: compare ratios from one run, not absolute figures across runs.
"""

import argparse
import contextlib
import itertools
import json
import os
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'code'))
sys.path.insert(0, str(ROOT / 'code' / 'tests'))  # redis_server: a real redis-server

from sync_bench import report as sync_report  # noqa: E402
from sync_bench import sync_scenario  # noqa: E402

from localrelay import gunicorn_master, gunicorn_relay, gunicorn_workers, process_status  # noqa: E402
from simulator import JwksIssuer, SpyCloudSimulator, tenant  # noqa: E402

SIZES = [(1, 1), (10, 5), (100, 20), (500, 60)]
MIX = [((1, 1), 50), ((10, 5), 30), ((100, 20), 15), ((500, 60), 5)]
_unique = itertools.count()


def address(records, catalogs, tag):
    """A fresh simulator address: new records and new catalog ids, so nothing is cached."""
    return f'r{records}c{catalogs}-{tag}{next(_unique)}@bench.example'


class Client:
    def __init__(self, url, token):
        self.url = url
        self.session = requests.Session()
        self.session.headers['Authorization'] = f'Bearer {token}'

    def deliberate(self, values):
        return self.post_emails('/deliberate/observables', values)

    def observe_all(self, values):
        return self.post_emails('/observe/observables', values)

    def post_emails(self, route, values):
        """(seconds, status, body) of one request for ``values``, as e-mail observables."""
        started = time.perf_counter()
        response = self.session.post(
            self.url + route, json=[{'type': 'email', 'value': v} for v in values], timeout=60
        )
        return time.perf_counter() - started, response.status_code, response.json()

    def observe(self, value, parse=True):
        """(seconds, status, body); with parse=False only an answer with errors is parsed,
        so the load generator spends the machine's two cores on the relay, not on JSON."""
        started = time.perf_counter()
        response = self.session.post(
            self.url + '/observe/observables', json=[{'type': 'email', 'value': value}], timeout=60
        )
        elapsed = time.perf_counter() - started
        if parse or b'"errors"' in response.content:
            return elapsed, response.status_code, response.json()
        return elapsed, response.status_code, {'data': '(not parsed)'}


def percentile(values, pct):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_table(url, token, spycloud, repeat):
    """Cold = a never-seen address; warm = the same address again (catalogs cached)."""
    rows = []
    client = Client(url, token)  # one keep-alive connection: one worker, whose cache warms
    for records, catalogs in SIZES:
        cold, warm, cold_calls, warm_calls = [], [], [], []
        cold_compass, warm_compass = [], []  # of those calls, Compass's (the pivot)
        for _ in range(repeat):
            value = address(records, catalogs, 'lat')
            spycloud.reset_stats()
            elapsed, status, body = client.observe(value)
            assert status == 200 and 'data' in body, body
            cold.append(elapsed)
            cold_calls.append(spycloud.stats()['requests'])
            cold_compass.append(spycloud.stats()['by_endpoint']['compass-device-records'])
            spycloud.reset_stats()
            elapsed, status, body = client.observe(value)
            warm.append(elapsed)
            warm_calls.append(spycloud.stats()['requests'])
            warm_compass.append(spycloud.stats()['by_endpoint']['compass-device-records'])
        rows.append(
            {
                'records': records,
                'catalogs': catalogs,
                'cold_ms': statistics.median(cold) * 1000,
                'warm_ms': statistics.median(warm) * 1000,
                'calls_cold': statistics.median(cold_calls),
                'calls_warm': statistics.median(warm_calls),
                'compass_cold': statistics.median(cold_compass),
                'compass_warm': statistics.median(warm_compass),
                'sightings': min(records, 100),
            }
        )
    return rows


def serial_cold(url, token, repeat, records=100, catalogs=20):
    client = Client(url, token)
    times = []
    for _ in range(repeat):
        elapsed, status, body = client.observe(address(records, catalogs, 'serial'))
        assert status == 200 and 'data' in body, body
        times.append(elapsed)
    return statistics.median(times) * 1000


def load(url, token, clients, seconds, pool_size=200, seed=7, targets=None, during=None):
    """N clients, each with its own connection, looping over a mix of addresses for a while.

    ``targets``: (url, token) pairs the clients are spread over (replicas); ``during``: a
    function run beside the load (a Redis outage), joined at the end."""
    rng = random.Random(seed)
    sizes = [size for size, weight in MIX for _ in range(weight)]
    pool = [address(*rng.choice(sizes), 'mix') for _ in range(pool_size)]
    latencies, outcomes, lock = [], {'ok': 0, 'partial': 0, 'failed': 0}, threading.Lock()
    errors = {}
    stop_at = time.monotonic() + seconds

    targets = targets or [(url, token)]

    def run(n):
        client, local = Client(*targets[n % len(targets)]), random.Random(seed + n)
        while time.monotonic() < stop_at:
            try:
                elapsed, status, body = client.observe(local.choice(pool), parse=False)
            except requests.RequestException as error:
                with lock:
                    outcomes['failed'] += 1
                    errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                continue
            kinds = {(e['type'], e['code']) for e in body.get('errors', [])}
            kinds.discard(('warning', 'too many records'))  # the limit at work, not a failure
            with lock:
                latencies.append(elapsed)
                if status != 200 or any(kind == 'fatal' for kind, _ in kinds):
                    outcomes['failed'] += 1
                elif kinds:
                    outcomes['partial'] += 1
                else:
                    outcomes['ok'] += 1
                for _, code in kinds:
                    errors[code] = errors.get(code, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    if during is not None:
        threads.append(threading.Thread(target=during))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    return {
        'clients': clients,
        'seconds': round(wall, 2),
        'requests': len(latencies),
        'throughput_rps': len(latencies) / wall,
        'p50_ms': percentile(latencies, 50) * 1000,
        'p95_ms': percentile(latencies, 95) * 1000,
        'p99_ms': percentile(latencies, 99) * 1000,
        **outcomes,
        'errors': errors,
    }


def measured(url, spycloud, ask, values):
    """(seconds, worker CPU ms, SpyCloud calls, body) of one request ``ask(values)``."""
    spycloud.reset_stats()
    before = worker_cpu_ns(url)
    elapsed, status, body = ask(values)
    cpu_ms = (worker_cpu_ns(url) - before) / 1e6
    assert status == 200 and 'errors' not in body, body
    return elapsed, cpu_ms, spycloud.stats()['requests'], body


def deliberate_table(url, token, spycloud, repeat, latency):
    """Cold: never-seen accounts, one call per ten; warm: the same again, from the cache.

    The relay's own time is given twice: the latency above the simulator's (which also holds
    the simulator's and this client's work on the two cores), and the worker's CPU time for the
    request, read from the kernel's scheduler counters (nanoseconds), which holds only its own.
    """
    rows, tags = [], itertools.count()
    client = Client(url, token)  # one keep-alive connection: one worker, whose cache warms
    for size in (1, 20):
        cold, warm, cold_calls, warm_calls, found = [], [], [], [], []
        cold_cpu, warm_cpu = [], []
        for _ in range(repeat):
            tag = next(tags)
            values = [
                f'v{3 + i}s{20 if i % 2 == 0 else 5}@d{tag}.bench.example' for i in range(size)
            ]
            for sample, calls, cpu in ((cold, cold_calls, cold_cpu), (warm, warm_calls, warm_cpu)):
                elapsed, cpu_ms, made, body = measured(url, spycloud, client.deliberate, values)
                sample.append(elapsed)
                cpu.append(cpu_ms)
                calls.append(made)
            found.append(body['data'].get('verdicts', {}).get('count', 0))
        rows.append(
            {
                'observables': size,
                'verdicts': statistics.median(found),
                'cold_ms': statistics.median(cold) * 1000,
                'cold_relay_ms': (statistics.median(cold) - latency) * 1000,
                'cold_cpu_ms': statistics.median(cold_cpu),
                'warm_ms': statistics.median(warm) * 1000,
                'warm_cpu_ms': statistics.median(warm_cpu),
                'calls_cold': statistics.median(cold_calls),
                'calls_warm': statistics.median(warm_calls),
            }
        )
    return rows


def lists_row(url, issuer, spycloud, repeat, latency):
    """Cold, 20 never-seen accounts: a deliberate, and an observe whose own records cannot
    decide the verdicts (``min_severity`` 25 in the token leaves out the 20s the rule counts)."""
    row = {}
    for route, claims in (('deliberate', {}), ('observe', {'min_severity': '25'})):
        client = Client(url, issuer.mint(url, **claims))
        samples, cpu, calls = [], [], []
        for _ in range(repeat):
            tag = next(_unique)
            values = [f'v{3 + i}s{25 if i % 2 else 20}@l{tag}.bench.example' for i in range(20)]
            ask = client.deliberate if route == 'deliberate' else client.observe_all
            elapsed, cpu_ms, made, body = measured(url, spycloud, ask, values)
            assert body['data']['verdicts']['count'] == 20, body['data'].get('verdicts')
            samples.append(elapsed)
            cpu.append(cpu_ms)
            calls.append(made)
        row[route] = {
            'cold_ms': statistics.median(samples) * 1000,
            'cold_relay_ms': (statistics.median(samples) - latency) * 1000,
            'cold_cpu_ms': statistics.median(cpu),
            'calls': statistics.median(calls),
        }
    return row


TILE_IDS = (
    'spycloud-exposure-summary',
    'spycloud-exposures-per-day',
    'spycloud-exposures-by-severity',
    'spycloud-most-exposed-accounts',
    'spycloud-newest-breach-sources',
)


def worker_cpu_s(url):
    """CPU seconds (user + system) the gunicorn workers serving ``url`` have used so far."""
    ticks = os.sysconf('SC_CLK_TCK')
    total = 0.0
    for pid in gunicorn_workers(gunicorn_master(url)):
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def worker_cpu_ns(url):
    """CPU time, in nanoseconds, every thread of the gunicorn workers serving ``url`` has run
    so far (the scheduler's own count: fine enough for one request, unlike utime's ticks)."""
    total = 0
    for pid in gunicorn_workers(gunicorn_master(url)):
        for task in Path(f'/proc/{pid}/task').iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                total += int((task / 'schedstat').read_text().split()[0])
    return total


def worker_rss_kib(url):
    """Resident memory of the gunicorn workers serving ``url``."""
    return sum(
        int(process_status(pid)['VmRSS'].split()[0])
        for pid in gunicorn_workers(gunicorn_master(url))
    )


def tiles_table(url, token, spycloud, repeat):
    """Cold: the 90-day aggregate gathered; warm: each tile of it again, from the cache."""
    tenant.records_by_day(datetime.now(UTC).date())  # the simulator makes it once
    client = Client(url, token)
    before = worker_rss_kib(url)
    spycloud.reset_stats()
    response, cold = timed_tile(client, url, TILE_IDS[0])
    assert response.status_code == 200 and 'errors' not in response.json(), response.text
    cold_calls = spycloud.stats()['by_endpoint']
    grown = worker_rss_kib(url) - before
    warm, warm_calls = warm_tiles(client, url, spycloud, TILE_IDS, repeat)
    records = response.json()['data']['data'][1]['value']
    return {
        'records': records,
        'cold_ms': cold * 1000,
        'calls_cold_watchlist': cold_calls['watchlist-records'],
        'calls_cold_catalog': cold_calls['catalog'],
        'warm_median_ms': statistics.median(warm) * 1000,
        'warm_max_ms': max(warm) * 1000,
        'calls_warm': warm_calls,
        'worker_rss_growth_mib': grown / 1024,
    }


DEVICE_TILE_IDS = ('spycloud-infected-devices-summary', 'spycloud-infected-devices')


def timed_tile(client, url, tile_id, period='last_90_days'):
    """One tile's data: the response and its seconds."""
    started = time.perf_counter()
    response = client.session.post(
        url + '/tiles/tile-data', timeout=60, json={'tile_id': tile_id, 'period': period}
    )
    return response, time.perf_counter() - started


def warm_tiles(client, url, spycloud, tile_ids, repeat):
    """Each tile asked again ``repeat`` times: the seconds of each, and the SpyCloud calls."""
    warm, calls = [], 0
    for _ in range(repeat):
        for tile_id in tile_ids:
            spycloud.reset_stats()
            warm.append(timed_tile(client, url, tile_id)[1])
            calls += spycloud.stats()['requests']
    return warm, calls


def device_tiles_table(url, token, spycloud, repeat):
    """The infected-devices tiles (SpyCloud Compass), last_90_days: cold, the period's device
    list gathered (its compass/devices calls); warm, each tile again from the cache."""
    client = Client(url, token)
    spycloud.reset_stats()
    response, cold = timed_tile(client, url, DEVICE_TILE_IDS[0])
    assert response.status_code == 200 and 'errors' not in response.json(), response.text
    cold_calls = spycloud.stats()['requests']
    warm, warm_calls = warm_tiles(client, url, spycloud, DEVICE_TILE_IDS, repeat)
    return {
        'devices': response.json()['data']['data'][0]['value'],
        'cold_ms': cold * 1000,
        'calls_cold': cold_calls,
        'warm_median_ms': statistics.median(warm) * 1000,
        'calls_warm': warm_calls,
    }


def tiles_at_once(targets, spycloud, period='last_90_days'):
    """Every tile of one period asked at the same moment, as XDR's dashboard does (cold), each
    on a fresh connection, spread over ``targets`` (replicas, and so their workers): the
    SpyCloud calls of all, and how many tiles came back partial or failed."""
    spycloud.reset_stats()
    asks = [(targets[i % len(targets)], tile_id) for i, tile_id in enumerate(TILE_IDS)]
    start, answers = threading.Barrier(len(asks)), [{} for _ in asks]

    def ask(index, target, tile_id):
        url, token = target
        start.wait()
        answers[index] = requests.post(
            url + '/tiles/tile-data',
            timeout=90,
            json={'tile_id': tile_id, 'period': period},
            headers={'Authorization': f'Bearer {token}', 'Connection': 'close'},
        ).json()

    threads = [threading.Thread(target=ask, args=(i, *a)) for i, a in enumerate(asks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    calls = spycloud.stats()['by_endpoint']
    return {
        'tiles': len(asks),
        'calls_watchlist': calls['watchlist-records'],
        'calls_catalog': calls['catalog'],
        'partial': sum(1 for a in answers if 'data' in a and 'errors' in a),
        'failed': sum(1 for a in answers if 'data' not in a),
    }


def tiles_at_once_2x2(spycloud, issuer, shared):
    """``tiles_at_once`` on two replicas of two workers on one (cold) Redis, default budget."""
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(gunicorn_relay(spycloud, issuer, **shared)) for _ in range(2)]
        return tiles_at_once([(url, issuer.mint(url)) for url in urls], spycloud)


def cold_tile(url, token, spycloud, period):
    """One cold tile of ``period``: (ms, watchlist calls, of which 504s, complete)."""
    spycloud.reset_stats()
    started = time.perf_counter()
    response = requests.post(
        url + '/tiles/tile-data',
        timeout=60,
        headers={'Authorization': f'Bearer {token}'},
        json={'tile_id': TILE_IDS[0], 'period': period},
    )
    elapsed = time.perf_counter() - started
    calls = [e for e in spycloud.request_log if e['endpoint'] == 'watchlist-records']
    return {
        'ms': elapsed * 1000,
        'calls_watchlist': len(calls),
        'calls_504': sum(1 for e in calls if e['status'] == 504),
        'complete': response.status_code == 200 and 'errors' not in response.json(),
    }


def cold_dashboards(spycloud, issuer):
    """Cold dashboards as an analyst meets them: 90 and 7 days with the default settings (the
    rate limiter on, 10 calls/s), and 90 days under a gateway that answers 504 for any window
    over 10 days (limiter off), each on a fresh relay (nothing cached, no window size
    remembered)."""
    tenant.records_by_day(datetime.now(UTC).date())  # the simulator makes it once
    found = {}
    for period in ('last_90_days', 'last_7_days'):
        with gunicorn_relay(spycloud, issuer, LOG_LEVEL='warning', WEB_CONCURRENCY=1) as url:
            found[f'{period}_limiter_on'] = cold_tile(url, issuer.mint(url), spycloud, period)
    spycloud.watchlist_max_days = 10
    try:
        with gunicorn_relay(
            spycloud, issuer, LOG_LEVEL='warning', WEB_CONCURRENCY=1, SPYCLOUD_RATE_LIMIT=0
        ) as url:
            token = issuer.mint(url)
            found['last_90_days_504_over_10_days'] = cold_tile(url, token, spycloud, 'last_90_days')
    finally:
        spycloud.watchlist_max_days = None
    return found


def replicas_table(spycloud, issuer, args, latency):
    """Two replicas of two workers on one Redis: the shared cache, the calls of the mix against
    one process, the shared rate budget under SpyCloud's limit, and a Redis outage."""
    from redis_server import RedisServer

    results, redis = {}, RedisServer().start()
    shared = dict(LOG_LEVEL='warning', WEB_CONCURRENCY=2, REDIS_URL=redis.url)
    try:
        results['tiles_at_once'] = tiles_at_once_2x2(spycloud, issuer, shared)
        with contextlib.ExitStack() as stack:
            urls = [
                stack.enter_context(
                    gunicorn_relay(spycloud, issuer, **shared, SPYCLOUD_RATE_LIMIT=0)
                )
                for _ in range(2)
            ]
            targets = [(url, issuer.mint(url)) for url in urls]
            results['warm_calls'] = warm_everywhere(targets, spycloud)
            spycloud.reset_stats()
            cpu = sum(worker_cpu_s(url) for url in urls)
            run = load(None, None, args.clients, args.seconds, seed=11, targets=targets)
            run['calls'] = spycloud.stats()['requests']
            run['cpu_s_per_answer'] = (sum(worker_cpu_s(u) for u in urls) - cpu) / max(
                1, run['requests']
            )
            results['mix_2x2'] = run
            spycloud.reset_stats()
            outage = load(
                None,
                None,
                args.clients,
                args.seconds + 4,
                seed=12,
                targets=targets,
                during=lambda: (time.sleep(2), redis.stop(), time.sleep(10), redis.start()),
            )
            results['redis_outage'] = outage
        spycloud.reset_stats()
        with gunicorn_relay(
            spycloud, issuer, LOG_LEVEL='warning', WEB_CONCURRENCY=1, SPYCLOUD_RATE_LIMIT=0
        ) as url:
            cpu = worker_cpu_s(url)
            single = load(url, issuer.mint(url), args.clients, args.seconds, seed=11)
            single['calls'] = spycloud.stats()['requests']
            single['cpu_s_per_answer'] = (worker_cpu_s(url) - cpu) / max(1, single['requests'])
        results['mix_single'] = single
        results['rate_limited'] = shared_budget(spycloud, issuer, shared, args)
    finally:
        redis.stop()
    return results


def warm_everywhere(targets, spycloud):
    """After one cold 100/20 lookup on the first replica, 8 lookups on fresh connections to
    each replica (so on either worker): the SpyCloud calls they made."""
    value = address(100, 20, 'shared')
    Client(*targets[0]).observe(value)
    spycloud.reset_stats()
    for url, token in targets:
        for _ in range(8):
            requests.post(
                url + '/observe/observables',
                timeout=30,
                json=[{'type': 'email', 'value': value}],
                headers={'Authorization': f'Bearer {token}', 'Connection': 'close'},
            )
    return spycloud.stats()['requests']


def shared_budget(spycloud, issuer, shared, args):
    """The simulator limits the key to 10 calls/s; both replicas run the default settings."""
    spycloud.rate_limit = (10, 20)
    spycloud.reset_stats()
    try:
        with contextlib.ExitStack() as stack:
            urls = [
                stack.enter_context(gunicorn_relay(spycloud, issuer, **shared)) for _ in range(2)
            ]
            started = time.time()
            run = load(
                None,
                None,
                args.clients,
                2 * args.seconds,
                seed=13,
                targets=[(url, issuer.mint(url)) for url in urls],
            )
        late = [c for c in spycloud.request_log if c['time'] - started > 10]
        run['calls_after_10s'] = len(late)
        run['429s_after_10s'] = sum(1 for c in late if c['status'] == 429)
        run['429s'] = sum(1 for c in spycloud.request_log if c['status'] == 429)
    finally:
        spycloud.rate_limit = None
    return run


def overhead(url, token, repeat):
    """Warm lookups of 100 sightings at 0 ms simulator latency: the relay's own time."""
    client = Client(url, token)
    value = address(100, 20, 'ovh')
    for _ in range(3):
        client.observe(value)
    times = [client.observe(value)[0] for _ in range(max(repeat, 20))]
    return {'median_ms': statistics.median(times) * 1000, 'p95_ms': percentile(times, 95) * 1000}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--latency-ms', type=float, default=50, help='simulator latency (50)')
    parser.add_argument('--repeat', type=int, default=5, help='samples per median (5)')
    parser.add_argument('--clients', type=int, default=16, help='concurrent clients (16)')
    parser.add_argument('--seconds', type=float, default=10, help='load duration (10)')
    parser.add_argument(
        '--rate-limit',
        type=float,
        default=10,
        help="the simulator's per-key limit in scenario 5, requests/s (10)",
    )
    parser.add_argument(
        '--out',
        type=Path,
        default=None,
        help='the JSON file (bench/results/bench.json; bench-sync.json with --only sync)',
    )
    parser.add_argument('--quick', action='store_true', help='a short smoke run (CI)')
    parser.add_argument(
        '--only',
        choices=['sync'],
        help='run one scenario alone: sync (9, relay sync over the demo tenant)',
    )
    args = parser.parse_args(argv)
    if args.only == 'sync':
        return only_sync(args)
    args.out = args.out or ROOT / 'bench' / 'results' / 'bench.json'
    if args.quick:
        args.repeat, args.seconds, args.clients = 3, 2, 4
    latency = args.latency_ms / 1000
    results = {'latency_ms': args.latency_ms, 'repeat': args.repeat}

    with JwksIssuer() as issuer, SpyCloudSimulator(latency=latency) as spycloud:
        quiet = {'LOG_LEVEL': 'warning', 'SPYCLOUD_RATE_LIMIT': 0, 'RECORDS_CACHE_TTL_S': 0}
        with gunicorn_relay(spycloud, issuer, **quiet) as url:
            token = issuer.mint(url)
            print(f'latency table ({args.latency_ms:g} ms simulator latency) ...', flush=True)
            results['latency'] = latency_table(url, token, spycloud, args.repeat)
            print(f'load: {args.clients} clients for {args.seconds:g} s ...', flush=True)
            cpu = worker_cpu_s(url)
            results['load'] = load(url, token, args.clients, args.seconds)
            results['load']['cpu_s_per_answer'] = (worker_cpu_s(url) - cpu) / max(
                1, results['load']['requests']
            )
        serial = dict(
            SPYCLOUD_MAX_WORKERS=1,
            SPYCLOUD_CATALOG_BATCH=1,
            CATALOG_CACHE_SIZE=1,
            CATALOG_CACHE_TTL_S=0,
        )  # one catalog per call, one call at a time
        with gunicorn_relay(spycloud, issuer, **serial, **quiet) as url:
            print('serial path ...', flush=True)
            results['serial_cold_100_20_ms'] = serial_cold(url, issuer.mint(url), args.repeat)

        with gunicorn_relay(
            spycloud, issuer, LOG_LEVEL='warning', SPYCLOUD_RATE_LIMIT=0, WEB_CONCURRENCY=1
        ) as url:
            print('deliberate ...', flush=True)
            results['deliberate'] = deliberate_table(
                url, issuer.mint(url), spycloud, args.repeat, latency
            )

            print('dashboard tiles ...', flush=True)
            results['tiles'] = tiles_table(url, issuer.mint(url), spycloud, args.repeat)
            results['device_tiles'] = device_tiles_table(
                url, issuer.mint(url), spycloud, args.repeat
            )
            print('e-mail lists on ...', flush=True)
            results['lists'] = {'on': lists_row(url, issuer, spycloud, args.repeat, latency)}
        with gunicorn_relay(spycloud, issuer, LOG_LEVEL='warning', WEB_CONCURRENCY=1) as url:
            print('every tile at once, one worker, default budget ...', flush=True)
            results['tiles_at_once'] = tiles_at_once([(url, issuer.mint(url))], spycloud)
        print('cold dashboards (limiter on; 504 past 10 days) ...', flush=True)
        results['tiles_cold'] = cold_dashboards(spycloud, issuer)
        with gunicorn_relay(
            spycloud,
            issuer,
            LOG_LEVEL='warning',
            SPYCLOUD_RATE_LIMIT=0,
            WEB_CONCURRENCY=1,
            SPYCLOUD_EMAIL_BATCH=1,
        ) as url:
            print('e-mail lists off ...', flush=True)
            results['lists']['off'] = lists_row(url, issuer, spycloud, args.repeat, latency)

        spycloud.latency = 0.0
        with gunicorn_relay(spycloud, issuer, **quiet) as url:
            print('overhead at 0 ms ...', flush=True)
            results['overhead_0ms_100_sightings'] = overhead(url, issuer.mint(url), args.repeat)

        spycloud.latency = latency
        print('replicas on one Redis ...', flush=True)
        results['replicas'] = replicas_table(spycloud, issuer, args, latency)
        spycloud.rate_limit = (args.rate_limit, 2 * args.rate_limit)
        spycloud.reset_stats()  # the 429s counted below are this scenario's
        workers = 2  # gunicorn_conf.py's default WEB_CONCURRENCY; each worker has its own bucket
        per_worker = args.rate_limit * 0.8 / workers
        with gunicorn_relay(
            spycloud,
            issuer,
            LOG_LEVEL='warning',
            WEB_CONCURRENCY=workers,
            RECORDS_CACHE_TTL_S=0,
            SPYCLOUD_RATE_LIMIT=per_worker,
            SPYCLOUD_BURST=max(1, int(per_worker)),
        ) as url:
            print(f'rate-limited mix (simulator {args.rate_limit:g} rps) ...', flush=True)
            limited = load(url, issuer.mint(url), args.clients, args.seconds)
            limited['simulator_429s'] = sum(1 for c in spycloud.request_log if c['status'] == 429)
            limited['relay_rate_limit_per_worker'] = per_worker
            results['rate_limited'] = limited
        spycloud.rate_limit = None  # the sync runs against SpyCloud as the earlier scenarios
        results['sync'] = sync_scenario(spycloud)

    report(results)
    sync_report(results['sync'])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    print(f'\nJSON written to {args.out}')
    return 0


def only_sync(args):
    """Scenario 9 alone: its table, and its JSON in bench-sync.json unless --out says."""
    with SpyCloudSimulator(latency=args.latency_ms / 1000) as spycloud:
        results = {'latency_ms': args.latency_ms, 'sync': sync_scenario(spycloud)}
    sync_report(results['sync'])
    out = args.out or ROOT / 'bench' / 'results' / 'bench-sync.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + '\n')
    print(f'\nJSON written to {out}')
    return 0


def report(results):
    print(
        f'\n1-2. /observe/observables, one e-mail, simulator latency {results["latency_ms"]:g} ms'
        f' (median of {results["repeat"]})'
    )
    print(
        f'{"records":>8} {"sources":>8} {"cold ms":>9} {"warm ms":>9} '
        f'{"calls cold":>11} {"calls warm":>11} {"of which Compass":>17}'
    )
    for row in results['latency']:
        print(
            f'{row["records"]:>8} {row["catalogs"]:>8} {row["cold_ms"]:>9.1f} '
            f'{row["warm_ms"]:>9.1f} {row["calls_cold"]:>11g} {row["calls_warm"]:>11g} '
            f'{row["compass_cold"]:>8g} / {row["compass_warm"]:g}'
        )
    target = next(r for r in results['latency'] if r['records'] == 100)
    serial = results['serial_cold_100_20_ms']
    print(
        f'serial path, cold 100/20: {serial:.1f} ms = {serial / target["cold_ms"]:.1f}x the '
        f'concurrent cold lookup ({target["cold_ms"]:.1f} ms)'
    )
    for name, title in (
        ('load', '3. load over the mix'),
        ('rate_limited', '5. the same mix, simulator rate-limited'),
    ):
        run = results[name]
        print(
            f'\n{title}: {run["clients"]} clients, {run["seconds"]} s: '
            f'{run["requests"]} answers, {run["throughput_rps"]:.1f}/s, '
            f'p50 {run["p50_ms"]:.0f} ms, p95 {run["p95_ms"]:.0f} ms, p99 {run["p99_ms"]:.0f} ms'
        )
        print(
            f'   complete {run["ok"]}, partial {run["partial"]}, failed {run["failed"]}'
            + (
                f', {run["cpu_s_per_answer"] * 1000:.1f} ms relay CPU per answer'
                if 'cpu_s_per_answer' in run
                else ''
            )
            + (f', errors {run["errors"]}' if run['errors'] else '')
            + (f', simulator 429s {run["simulator_429s"]}' if 'simulator_429s' in run else '')
        )
    print(
        f'\n6. /deliberate/observables, simulator latency {results["latency_ms"]:g} ms '
        f'(median of {results["repeat"]})'
    )
    print(
        f'{"accounts":>8} {"verdicts":>8} {"cold ms":>9} {"above RT":>9} {"cold CPU":>9} '
        f'{"warm ms":>9} {"warm CPU":>9} {"calls cold":>11} {"calls warm":>11}'
    )
    for row in results['deliberate']:
        print(
            f'{row["observables"]:>8} {row["verdicts"]:>8g} {row["cold_ms"]:>9.1f} '
            f'{row["cold_relay_ms"]:>9.1f} {row["cold_cpu_ms"]:>9.1f} {row["warm_ms"]:>9.1f} '
            f'{row["warm_cpu_ms"]:>9.1f} {row["calls_cold"]:>11g} {row["calls_warm"]:>11g}'
        )
    print("   (above RT: the cold latency less the simulator's; CPU: the worker's own, in ms)")
    print('   20 cold accounts, e-mail lists on / off (SPYCLOUD_EMAIL_BATCH=1), in this run:')
    for route, what in (
        ('deliberate', 'deliberate'),
        ('observe', 'observe, min_severity 25 (its records cannot decide the verdicts)'),
    ):
        on, off = results['lists']['on'][route], results['lists']['off'][route]
        print(
            f'   {what}: {on["cold_ms"]:.1f} / {off["cold_ms"]:.1f} ms, '
            f'CPU {on["cold_cpu_ms"]:.1f} / {off["cold_cpu_ms"]:.1f} ms, '
            f'calls {on["calls"]:g} / {off["calls"]:g}'
        )
    tiles = results['tiles']
    print(
        f'\n7. dashboard, last_90_days over the demo tenant ({tiles["records"]} records in the '
        f'period), simulator latency {results["latency_ms"]:g} ms, limiter off'
    )
    print(
        f'   cold {tiles["cold_ms"]:.0f} ms with {tiles["calls_cold_watchlist"]} watchlist and '
        f'{tiles["calls_cold_catalog"]} catalog calls; warm tiles median '
        f'{tiles["warm_median_ms"]:.1f} ms (max {tiles["warm_max_ms"]:.1f}), '
        f'{tiles["calls_warm"]} calls; worker memory grew '
        f'{tiles["worker_rss_growth_mib"]:.1f} MiB'
    )
    devices = results['device_tiles']
    print(
        f'   infected-devices tiles ({devices["devices"]} devices, Compass): cold '
        f'{devices["cold_ms"]:.0f} ms with {devices["calls_cold"]} compass/devices call(s); '
        f'warm median {devices["warm_median_ms"]:.1f} ms, {devices["calls_warm"]} calls'
    )
    one_gathering = tiles['calls_cold_watchlist']
    for where, run in (
        ('one worker', results['tiles_at_once']),
        ('2 replicas x 2 workers on one Redis', results['replicas']['tiles_at_once']),
    ):
        print(
            f'   every tile at the same moment, cold, default budget, {where}: '
            f'{run["calls_watchlist"]} watchlist calls for {run["tiles"]} tiles = '
            f'{run["calls_watchlist"] / max(1, one_gathering):.2f}x one gathering '
            f'({one_gathering}); partial {run["partial"]}, failed {run["failed"]}'
        )
    for name, row in results['tiles_cold'].items():
        print(
            f'   cold {name}: {row["ms"]:.0f} ms, {row["calls_watchlist"]} watchlist calls '
            f'({row["calls_504"]} answered 504), {"complete" if row["complete"] else "PARTIAL"}'
        )
    rep = results['replicas']
    mix, single, out, lim = (
        rep['mix_2x2'],
        rep['mix_single'],
        rep['redis_outage'],
        rep['rate_limited'],
    )
    print('\n8. two replicas x two workers on one Redis')
    print(
        f'   warm 100/20 after one cold lookup: {rep["warm_calls"]} SpyCloud calls for 16 '
        'lookups on fresh connections to both replicas'
    )
    print(
        f'   mix (records cache on, the default): {mix["throughput_rps"]:.1f}/s, p99 '
        f'{mix["p99_ms"]:.0f} ms, {mix["calls"]} SpyCloud calls for its 200 addresses, '
        f'{mix["cpu_s_per_answer"] * 1000:.1f} ms CPU per answer; one process of one worker: '
        f'{single["throughput_rps"]:.1f}/s, p99 {single["p99_ms"]:.0f} ms, {single["calls"]} '
        f'calls ({mix["calls"] / max(1, single["calls"]):.2f}x), '
        f'{single["cpu_s_per_answer"] * 1000:.1f} ms CPU per answer; failed {mix["failed"]}'
    )
    print(
        f'   Redis killed for 10 s during the mix: {out["requests"]} answers, '
        f'failed {out["failed"]}, partial {out["partial"]}'
    )
    print(
        f'   simulator limit 10 calls/s, default settings: {lim["requests"]} answers, '
        f'complete {lim["ok"]}, failed {lim["failed"]}; 429s {lim["429s"]}, after 10 s '
        f'{lim["429s_after_10s"]} of {lim["calls_after_10s"]} calls'
    )
    over = results['overhead_0ms_100_sightings']
    print(
        f'\n4. relay time at 0 ms simulator latency, 100 sightings (warm): '
        f'median {over["median_ms"]:.1f} ms, p95 {over["p95_ms"]:.1f} ms'
    )


if __name__ == '__main__':
    sys.exit(main())
