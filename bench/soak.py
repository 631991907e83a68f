"""``make soak``: the relay under a long mixed load, with SpyCloud misbehaving.

N clients for S seconds send valid lookups (some of addresses SpyCloud fails on: 503 bursts,
resets, throttling, a silent server), bad tokens and bad bodies, and health checks. Reports
requests served, outcomes by kind (every kind must be one the request could expect), p99
latency, and the gunicorn workers' memory and threads at the start and the end.
Exit status 1 when an outcome was unexpected, an HTTP 5xx was seen, or a worker grew.
"""

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'code'))

from localrelay import gunicorn_master, gunicorn_relay, gunicorn_workers, process_status  # noqa: E402
from simulator import JwksIssuer, SpyCloudSimulator  # noqa: E402

# Which outcomes each kind of request may have: (type, code) pairs or 'ok'.
EXPECTED = {
    'lookup': {'ok', ('warning', 'too many records')},
    'faulty lookup': {
        'ok',
        ('fatal', 'unknown'),
        ('fatal', 'too many requests'),
        ('warning', 'deadline exceeded'),
        ('warning', 'too many records'),
    },
    'bad token': {('fatal', 'authorization error')},
    'bad body': {('fatal', 'invalid argument')},
    'health': {'ok'},
}


MAX_RSS_GROWTH_MIB = 20  # allocator noise over a minute; a leak per request grows past it


def process_summary(pid):
    """(resident MiB, threads) from /proc."""
    fields = process_status(pid)
    return int(fields['VmRSS'].split()[0]) / 1024, int(fields['Threads'])


def snapshot(master_pid):
    return {pid: process_summary(pid) for pid in gunicorn_workers(master_pid)}


def outcome(response):
    if response.status_code >= 500:
        return ('http', str(response.status_code))
    body = response.json()
    kinds = {(e['type'], e['code']) for e in body.get('errors', [])}
    fatal = sorted(k for k in kinds if k[0] == 'fatal')
    if fatal:
        return fatal[0]
    return sorted(kinds)[0] if kinds else 'ok'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--clients', type=int, default=16)
    parser.add_argument('--seconds', type=float, default=60)
    parser.add_argument('--latency-ms', type=float, default=20)
    parser.add_argument(
        '--deadline', type=float, default=3.0, help='LOOKUP_DEADLINE_S of the relay under test (3)'
    )
    parser.add_argument(
        '--redis',
        action='store_true',
        help='share state on a real redis-server, killed and restarted during the run',
    )
    parser.add_argument('--out', type=Path, default=ROOT / 'bench' / 'results' / 'soak.json')
    args = parser.parse_args(argv)
    redis = None
    if args.redis:
        sys.path.insert(0, str(ROOT / 'code' / 'tests'))
        from redis_server import RedisServer

        redis = RedisServer().start()
    try:
        return _soak(args, redis)
    finally:
        if redis is not None:
            redis.stop()


def _soak(args, redis):

    with JwksIssuer() as issuer, SpyCloudSimulator(latency=args.latency_ms / 1000) as spycloud:
        spycloud.add_fault(503, match='flaky503', times=None)
        spycloud.add_fault(mode='reset', match='reset', times=None)
        spycloud.throttle(times=None, match='throttled')
        spycloud.add_fault(mode='hang', delay=60, match='silent')
        env = dict(
            LOG_LEVEL='warning',
            LOOKUP_DEADLINE_S=args.deadline,
            READ_TIMEOUT_S=5,
            SPYCLOUD_RATE_LIMIT=0,
            SPYCLOUD_BACKOFF_S=0.05,
            GUNICORN_TIMEOUT=30,
        )
        if redis is not None:
            env['REDIS_URL'] = redis.url
        with gunicorn_relay(spycloud, issuer, **env) as url:
            master = gunicorn_master(url)
            token = issuer.mint(url, exp=int(time.time()) + int(args.seconds) + 600)
            bad_tokens = [
                'garbage',
                issuer.mint(url, exp=int(time.time()) - 60),
                issuer.mint('https://elsewhere.example'),
                issuer.mint(url, kid='forged'),
            ]
            good = [
                f'r{n}c{max(1, n // 5)}-{i}@soak.example' for i in range(40) for n in (1, 5, 20)
            ]
            faulty = [
                f'r5c2-{kind}{i}@soak.example'
                for i in range(5)
                for kind in ('flaky503', 'reset', 'throttled', 'silent')
            ]
            bad_bodies = [
                'not json',
                '{"type": "email"}',
                '[{"type": "email"}]',
                json.dumps([{'type': 'email', 'value': f'a{i}@b.example'} for i in range(500)]),
                '[' * 5000,
            ]

            results, lock = [], threading.Lock()

            def client(n, stop_at, record):
                rng, session = random.Random(n), requests.Session()
                while time.monotonic() < stop_at:
                    if not record:  # warm-up: a connection per request reaches every worker
                        session.close()
                    kind = rng.choices(list(EXPECTED), weights=[50, 10, 15, 15, 10])[0]
                    headers = {'Authorization': f'Bearer {token}'}
                    path, data = '/observe/observables', None
                    if kind == 'lookup':
                        data = json.dumps([{'type': 'email', 'value': rng.choice(good)}])
                    elif kind == 'faulty lookup':
                        data = json.dumps([{'type': 'email', 'value': rng.choice(faulty)}])
                    elif kind == 'bad token':
                        headers['Authorization'] = f'Bearer {rng.choice(bad_tokens)}'
                        data = json.dumps([{'type': 'email', 'value': rng.choice(good)}])
                    elif kind == 'bad body':
                        data = rng.choice(bad_bodies)
                    else:
                        path = '/health'
                    began = time.perf_counter()
                    try:
                        response = session.post(
                            url + path, data=data, headers=headers, timeout=args.deadline + 30
                        )
                        got = outcome(response)
                    except requests.RequestException as error:
                        got = ('client', type(error).__name__)
                    if record:
                        with lock:
                            results.append((kind, got, time.perf_counter() - began))

            def phase(seconds, record):
                stop_at = time.monotonic() + seconds
                threads = [
                    threading.Thread(target=client, args=(n, stop_at, record))
                    for n in range(args.clients)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()

            # A warm-up at full load first: thread pools and caches fill up lazily, and that
            # is not growth; the start figures are taken after it.
            phase(min(10.0, args.seconds / 4), record=False)
            time.sleep(args.deadline + 1)
            start = snapshot(master)
            began = time.monotonic()
            outage = threading.Thread(target=_outages, args=(redis, args.seconds))
            outage.start()
            phase(args.seconds, record=True)
            outage.join()
            wall = time.monotonic() - began
            time.sleep(args.deadline + 1)  # let every lookup reach its deadline
            end = snapshot(master)

    report = summarize(results, wall, start, end)
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + '\n')
    ok = (
        not report['unexpected']
        and not report['workers_replaced']
        and all(
            w['rss_growth_mib'] < MAX_RSS_GROWTH_MIB and w['threads_end'] <= w['threads_start']
            for w in report['workers']
        )
    )
    print(
        f'\nsoak {"passed" if ok else "FAILED"}: {report["requests"]} requests in '
        f'{report["seconds"]} s, p99 {report["p99_ms"]} ms, '
        f'{sum(report["unexpected"].values())} unexpected outcomes'
    )
    return 0 if ok else 1


def _outages(redis, seconds):
    """With Redis: killed a third of the way in, started again at two thirds."""
    if redis is None:
        return
    time.sleep(seconds / 3)
    redis.stop()
    time.sleep(seconds / 3)
    redis.start()


def summarize(results, wall, start, end):
    by_kind = {}
    unexpected = Counter()
    for kind, got, _ in results:
        label = got if got == 'ok' else f'{got[0]}: {got[1]}'
        by_kind.setdefault(kind, Counter())[label] += 1
        if got not in EXPECTED[kind]:
            unexpected[f'{kind} -> {label}'] += 1
    latencies = sorted(elapsed for _, _, elapsed in results)
    workers = []
    for pid in sorted(set(start) & set(end)):
        (rss0, threads0), (rss1, threads1) = start[pid], end[pid]
        workers.append(
            {
                'pid': pid,
                'rss_start_mib': round(rss0, 1),
                'rss_end_mib': round(rss1, 1),
                'rss_growth_mib': round(rss1 - rss0, 1),
                'threads_start': threads0,
                'threads_end': threads1,
            }
        )
    return {
        'requests': len(results),
        'seconds': round(wall, 1),
        'throughput_rps': round(len(results) / wall, 1),
        'p50_ms': round(statistics.median(latencies) * 1000),
        'p99_ms': round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000),
        'outcomes': {kind: dict(counter) for kind, counter in by_kind.items()},
        'unexpected': dict(unexpected),
        'workers': workers,
        'workers_replaced': sorted(set(start) ^ set(end)),
    }


if __name__ == '__main__':
    sys.exit(main())
