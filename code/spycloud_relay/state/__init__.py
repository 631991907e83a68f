"""The state behind the client's caches and its SpyCloud rate budget.

In-process by default; with REDIS_URL, shared by every worker and replica through Redis, the
entries named and sealed with keys derived from each tenant's API key (a dump of Redis is
useless without it), and Redis failing never fails a lookup: each store and the limiter then
use their in-process twins until Redis answers again.

    catalogs = state.cache(settings, 'catalogs', size, ttl)   # get/set(..., secret=api_key)
    limiter = state.limiter(settings)                         # acquire(fingerprint, deadline)
    gatherings = state.leases(settings, 'gatherings', ttl)    # acquire/release(key, secret=)
"""

import threading

from spycloud_relay.config import Settings
from spycloud_relay.state.lease import Leases, MemoryLeases, RedisLeases
from spycloud_relay.state.link import RedisLink, Unavailable
from spycloud_relay.state.ratelimit import AdaptiveLimiter, BudgetRule, Limiter, RedisLimiter
from spycloud_relay.state.store import MISSING, MemoryStore, RedisStore, Store

__all__ = [
    'MISSING',
    'AdaptiveLimiter',
    'BudgetRule',
    'Leases',
    'Limiter',
    'MemoryLeases',
    'MemoryStore',
    'RedisLeases',
    'RedisLimiter',
    'RedisLink',
    'RedisStore',
    'Store',
    'Unavailable',
    'cache',
    'leases',
    'limiter',
    'link',
]

_links: dict[tuple[str, float], RedisLink] = {}
_links_lock = threading.Lock()


def link(settings: Settings) -> RedisLink | None:
    """The process's Redis link for these settings (one pool, one outage state), or None
    without REDIS_URL. Nothing connects until the first command."""
    if not settings.redis_url:
        return None
    key = (settings.redis_url, settings.redis_timeout_s)
    with _links_lock:
        if key not in _links:
            _links[key] = RedisLink(settings.redis_url, settings.redis_timeout_s)
        return _links[key]


# The setting bounding each cache's in-process bytes (MiB), by cache name.
_MAX_MB = {
    'catalogs': 'catalog_cache_max_mb',
    'records': 'records_cache_max_mb',
    'devices': 'catalog_cache_max_mb',
    'tiles': 'tile_cache_max_mb',
    'device-tiles': 'tile_cache_max_mb',
    'gatherings': 'tile_cache_max_mb',
    'windows': 'tile_cache_max_mb',  # a window size per key: a few bytes each
}


def cache(settings: Settings, name: str, maxsize: int, ttl: float) -> Store:
    """A store for the cache ``name`` (a Redis namespace: ``catalogs``, ``records``), its
    in-process part bounded by ``maxsize`` entries and its setting's MiB."""
    max_bytes = int(getattr(settings, _MAX_MB[name]) * 1024 * 1024)
    shared = link(settings)
    if shared is None or maxsize <= 0 or ttl <= 0:
        return MemoryStore(maxsize, ttl, max_bytes, name)
    return RedisStore(shared, name, maxsize, ttl, max_bytes)


def limiter(settings: Settings) -> Limiter:
    """The SpyCloud rate budget per key: shared through Redis when it is configured."""
    rule = BudgetRule.from_settings(settings)
    shared = link(settings)
    if shared is None or not rule.enabled:
        return AdaptiveLimiter(rule)
    return RedisLimiter(shared, rule)


def leases(settings: Settings, name: str, ttl: float) -> Leases:
    """Leases named ``name`` (a Redis namespace) lasting ``ttl`` seconds at most: one holder
    per process, or per deployment when Redis is configured."""
    shared = link(settings)
    if shared is None:
        return MemoryLeases(ttl)
    return RedisLeases(shared, name, ttl)
