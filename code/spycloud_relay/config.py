"""Settings: every environment variable the relay reads, read once at start-up.

A bad value stops the process with a message naming the variable, instead of
surfacing later as a confusing error in the middle of an investigation.
"""

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

VERSION = '1.0.0'

XDR_JWKS_HOSTS = (
    'visibility.amp.cisco.com',
    'visibility.eu.amp.cisco.com',
    'visibility.apjc.amp.cisco.com',
)


TRUE_WORDS = frozenset({'1', 'true', 'yes', 'on'})
FALSE_WORDS = frozenset({'0', 'false', 'no', 'off', ''})


def parse_flag(text: str, default: bool | None = None) -> bool | None:
    """``true``/``yes``/``on``/``1`` and their opposites (case and spaces aside); else default.
    The one boolean reader: settings, module fields (api/module_settings.py)."""
    text = text.strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    return default


# An integer, written with or without a fractional part of zeros: ``25``, ``-3``, ``25.0``.
INTEGER = re.compile(r'(-?[0-9]+)(?:\.0*)?')


def parse_int(value: object) -> int | None:
    """An int, an integral float (``25.0``) or a string of ASCII digits (``'25'``, ``'25.0'``);
    anything else (``'²'``, ``'--5'``, ``25.5``, ``inf``, 5000 digits, which ``int()`` refuses
    or str.isdigit() lets through) is None: unknown, never an error. The one integer reader:
    settings, module fields and SpyCloud's records (spycloud/models.py)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # False for inf and nan
    match = INTEGER.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        return int(match.group(1))
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return None


EMAIL_BATCH_MAX = 10  # addresses SpyCloud reportedly takes in one call


class ConfigError(ValueError):
    """An environment variable holds a value the relay cannot use."""


POSITIVE = (
    'lookup_deadline_s',
    'connect_timeout_s',
    'read_timeout_s',
    'jwks_timeout_s',
    'spycloud_max_workers',
    'spycloud_catalog_batch',
    'catalog_cache_size',
    'records_cache_size',
    'tile_cache_size',
    'tile_lease_ttl_s',
    'catalog_cache_max_mb',
    'records_cache_max_mb',
    'tile_cache_max_mb',
    'watchlist_window_days',
    'watchlist_window_pages',
    'max_content_length',
    'max_observables',
    'max_value_length',
)
NOT_NEGATIVE = (
    'trusted_proxies',
    'spycloud_retries',
    'spycloud_backoff_s',
    'catalog_cache_ttl_s',
    'records_cache_ttl_s',
    'tile_cache_ttl_s',
    'jwks_cache_ttl_s',
    'jwks_refresh_min_interval_s',
    'spycloud_rate_limit',
    'spycloud_burst',
)


@dataclass(frozen=True)
class Settings:
    """Process-wide configuration; per-request settings live in ModuleSettings."""

    spycloud_api_url: str = 'https://api.spycloud.io/enterprise-v2/'
    spycloud_ui_url: str = 'https://portal.spycloud.com/breach/catalog/{uuid}'
    allowed_jwks_hosts: tuple[str, ...] = XDR_JWKS_HOSTS
    jwt_audience: str = ''
    # Proxies in front of the relay whose X-Forwarded-* headers are believed (werkzeug's
    # ProxyFix); 0: none, the headers are ignored and the URL is the one the socket received.
    trusted_proxies: int = 0
    lookup_deadline_s: float = 25.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    spycloud_retries: int = 3
    spycloud_backoff_s: float = 0.5
    spycloud_max_workers: int = 32
    spycloud_catalog_batch: int = 10
    # E-mails asked per verdict call (spycloud/batching.py); SpyCloud reportedly takes ten.
    spycloud_email_batch: int = 10
    catalog_cache_size: int = 10000
    catalog_cache_ttl_s: float = 3600.0
    records_cache_size: int = 10000
    records_cache_ttl_s: float = 300.0
    # Observe asks SpyCloud Compass for the infected machines of infostealer records
    # (spycloud/compass.py); false: observe makes no Compass call (the infected-devices tiles
    # ask Compass apart, for a dashboard that shows them).
    compass_pivot: bool = True
    tile_cache_size: int = 1000
    tile_cache_ttl_s: float = 900.0
    # How long a gathering of the dashboard holds its key and period (tiles/single.py): longer
    # than a gathering (LOOKUP_DEADLINE_S), and as long as a dead gatherer blocks the others.
    tile_lease_ttl_s: float = 40.0
    # Each in-process cache is bounded by bytes too, per worker: its entries' encoded size
    # (what Redis would hold; the objects take about three times that in memory).
    catalog_cache_max_mb: float = 8.0
    records_cache_max_mb: float = 32.0
    tile_cache_max_mb: float = 8.0
    # The dashboard's watchlist windows (tiles/windows.py): the largest a gathering starts
    # with, and the pages a window may follow before what it has not finished is split.
    watchlist_window_days: int = 30
    watchlist_window_pages: int = 10
    jwks_cache_ttl_s: float = 600.0
    jwks_refresh_min_interval_s: float = 60.0
    jwks_timeout_s: float = 5.0
    spycloud_rate_limit: float = 10.0
    spycloud_burst: int = 20
    # The adaptive budget (state/ratelimit.py): never below the floor after a 429's cut, back
    # from the floor to SPYCLOUD_RATE_LIMIT in about SPYCLOUD_RATE_RECOVERY_S without a 429.
    spycloud_rate_floor: float = 0.5
    spycloud_rate_recovery_s: float = 20.0
    # Shared state (state/): caches and the rate budget of every worker and replica.
    redis_url: str = ''
    redis_timeout_s: float = 0.05
    max_content_length: int = 1024 * 1024
    max_observables: int = 100
    max_value_length: int = 1024
    openapi_enabled: bool = False
    metrics_enabled: bool = False
    log_level: str = 'INFO'

    def __post_init__(self) -> None:
        url = self.spycloud_api_url.strip()
        if not url.startswith(('http://', 'https://')):
            raise ConfigError(
                f'SPYCLOUD_API_URL must be an http(s) URL, got {self.spycloud_api_url!r}'
            )
        object.__setattr__(self, 'spycloud_api_url', url.rstrip('/') + '/')
        hosts = tuple(h.strip().lower() for h in self.allowed_jwks_hosts if h.strip())
        if not hosts:
            raise ConfigError('ALLOWED_JWKS_HOSTS must name at least one host')
        object.__setattr__(self, 'allowed_jwks_hosts', hosts)
        object.__setattr__(self, 'jwt_audience', self.jwt_audience.strip().rstrip('/'))
        self._check_finite()
        self._check_bounds()
        if not 1 <= self.spycloud_email_batch <= EMAIL_BATCH_MAX:
            raise ConfigError(f'SPYCLOUD_EMAIL_BATCH must be from 1 to {EMAIL_BATCH_MAX}')
        if self.tile_lease_ttl_s <= self.lookup_deadline_s:
            raise ConfigError(
                f'TILE_LEASE_TTL_S ({self.tile_lease_ttl_s:g}) must be longer than '
                f'LOOKUP_DEADLINE_S ({self.lookup_deadline_s:g}): a gathering would lose its '
                'lease while it runs, and another would start'
            )
        self._check_state()

    def _check_finite(self) -> None:
        """``nan`` passes every comparison and ``inf`` every lower bound: both would turn
        a time or size into nonsense (a nan deadline capped every timeout to 1 ms)."""
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f'{field.name.upper()} must be a finite number, got {value!r}')

    def _check_bounds(self) -> None:
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                raise ConfigError(f'{name.upper()} must be greater than 0')
        for name in NOT_NEGATIVE:
            if getattr(self, name) < 0:
                raise ConfigError(f'{name.upper()} must not be negative')

    def _check_state(self) -> None:
        url = self.redis_url.strip()
        if url and not url.lower().startswith(('redis://', 'rediss://')):
            # Only the scheme is quoted: the rest of a Redis URL can hold its password.
            got = f'a {url.partition("://")[0]!r} URL' if '://' in url else 'no scheme'
            raise ConfigError(
                f'REDIS_URL must be a redis:// or rediss:// URL (or empty), got {got}'
            )
        object.__setattr__(self, 'redis_url', url)
        for name in ('redis_timeout_s', 'spycloud_rate_floor', 'spycloud_rate_recovery_s'):
            if getattr(self, name) <= 0:
                raise ConfigError(f'{name.upper()} must be greater than 0')

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> 'Settings':
        """Build settings from environment variables named like the fields, upper-cased."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = environ.get(field.name.upper())
            if raw is None or raw.strip() == '':
                continue
            values[field.name] = _parse(field.name, raw, field.default)
        return cls(**values)


def _parse(name: str, raw: str, default: object) -> Any:
    if isinstance(default, tuple):
        return tuple(part for part in raw.split(','))
    if isinstance(default, bool):
        flag = parse_flag(raw)
        if flag is None:
            raise ConfigError(f'{name.upper()} must be true or false, got {raw!r}')
        return flag
    if isinstance(default, str):
        return raw
    if isinstance(default, int):
        value = parse_int(raw)
        if value is None:
            raise ConfigError(f'{name.upper()} must be an integer, got {raw!r}')
        return value
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigError(f'{name.upper()} must be a number, got {raw!r}') from None
