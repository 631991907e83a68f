"""Prometheus metrics, served at /metrics when METRICS_ENABLED is set.

Under gunicorn every worker counts on its own; with PROMETHEUS_MULTIPROC_DIR set
(gunicorn_conf.py sets it when metrics are on) prometheus-client keeps the counts
in files there and /metrics adds up all workers.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUEST_SECONDS = Histogram(
    'relay_request_duration_seconds',
    'Time to answer a request, by route and outcome.',
    ['route', 'outcome'],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60),
)
SPYCLOUD_CALLS = Counter(
    'relay_spycloud_calls_total',
    'Calls to the SpyCloud API, by endpoint and HTTP status (or the error that stopped them).',
    ['endpoint', 'status'],
)
SPYCLOUD_RETRIES = Counter(
    'relay_spycloud_retries_total',
    'Retries of SpyCloud calls (429 throttling, gateway errors, connection errors).',
    ['endpoint'],
)
CACHE_LOOKUPS = Counter(
    'relay_cache_lookups_total',
    'Cache lookups by cache (catalog, jwks) and result (hit, miss).',
    ['cache', 'result'],
)
LIMITER_WAIT_SECONDS = Histogram(
    'relay_rate_limiter_wait_seconds',
    'Time a SpyCloud call waited for the per-key rate limiter.',
    buckets=(0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25),
)
CACHE_BYTES = Gauge(
    'relay_cache_bytes',
    'Encoded bytes each in-process cache holds (catalogs, records, tiles), summed over the '
    'live workers; each worker keeps its own under its *_CACHE_MAX_MB.',
    ['cache'],
    multiprocess_mode='livesum',
)
STATE_FALLBACKS = Counter(
    'relay_state_fallback_total',
    'Operations on the shared state (Redis) answered from the '
    'in-process twin because Redis did not answer, by store (catalogs, records, limiter).',
    ['store'],
)
STATE_OUTAGES = Counter(
    'relay_state_outages_total', 'Times Redis stopped answering (each logged once, as a warning).'
)
RATE_BUDGET_CUTS = Counter(
    'relay_rate_budget_cuts_total', "Cuts of a key's SpyCloud rate budget after a throttling 429."
)
# `relay sync --every` (served on SYNC_METRICS_PORT when METRICS_ENABLED is set).
SYNC_RECORDS = Counter(
    'relay_sync_records_total', 'Watchlist records the sync read (published or changed).'
)
SYNC_INCIDENTS = Counter(
    'relay_sync_incidents_total', 'Incidents the sync imported into XDR, by result.', ['result']
)
SYNC_ERRORS = Counter('relay_sync_errors_total', 'Entities XDR answered with an error result.')
SYNC_LAST_SUCCESS = Gauge(
    'relay_sync_last_success_timestamp_seconds',
    'When the last sync run that imported every window ended (Unix time).',
)


def endpoint_label(path: str) -> str:
    """``breach/data/emails/a@b`` → ``breach/data/emails``: bounded label values, no selectors."""
    parts = path.split('/')
    if parts[:2] == ['breach', 'data'] and len(parts) > 2:
        return '/'.join(parts[:3])
    if parts[:2] == ['breach', 'catalog']:
        return 'breach/catalog'
    return parts[0] or 'other'


def cache_lookup(cache: str, hits: int = 0, misses: int = 0) -> None:
    if hits:
        CACHE_LOOKUPS.labels(cache, 'hit').inc(hits)
    if misses:
        CACHE_LOOKUPS.labels(cache, 'miss').inc(misses)


def exposition() -> tuple[bytes, str]:
    """(body, content type) of every worker's metrics."""
    if os.environ.get('PROMETHEUS_MULTIPROC_DIR'):
        registry = CollectorRegistry()
        # prometheus-client leaves it unannotated; unused-ignore until the check is strict.
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call, unused-ignore]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
