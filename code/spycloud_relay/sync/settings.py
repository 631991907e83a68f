"""The sync's own settings: its SpyCloud key, its XDR API client and what it imports.

Read beside the relay's ``Settings`` (config.py: SPYCLOUD_API_URL, REDIS_URL, timeouts, the rate
budget), once at the start of a run. A missing or bad value stops the sync before any call with
one line naming the variable; a secret's value is never part of that line.
"""

import ipaddress
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import SplitResult, urlsplit

from spycloud_relay.config import ConfigError, parse_flag, parse_int
from spycloud_relay.ctim.facts import DEFAULT_MIN_LENGTH, MAX_PASSWORD_LENGTH, PasswordPolicy
from spycloud_relay.sync.bundles import MIN_BUNDLE

SEVERITIES = (2, 5, 20, 25, 26, 30)  # SpyCloud's documented severities
TLPS = ('white', 'green', 'amber', 'red')  # CTIM's TLP vocabulary
PREFIX = re.compile(r'[a-z0-9-]{1,40}')
BUNDLE_MAX = 2000
LOOKBACK_MAX_DAYS = 365
WINDOW_MAX_PAGES = 100
XDR_API_URL = 'https://visibility.amp.cisco.com'
LOOPBACK_NAMES = ('localhost',)


def default_checkpoint_file() -> str:
    """Beside the process's temporary files: good for a try, lost with its container."""
    return os.path.join(tempfile.gettempdir(), 'spycloud-relay-sync.json')


def _env(name: str, *, required: bool = False) -> dict[str, Any]:
    """A field's metadata: the environment variable it is read from, and whether it must be
    set (the secrets and the client id, which have no default)."""
    return {'env': name, 'required': required}


@dataclass(frozen=True)
class SyncSettings:
    """What ``relay sync`` reads of the environment (each field's ``env``), validated."""

    spycloud_api_key: str = field(repr=False, metadata=_env('SPYCLOUD_API_KEY', required=True))
    xdr_client_id: str = field(metadata=_env('XDR_CLIENT_ID', required=True))
    xdr_client_password: str = field(
        repr=False, metadata=_env('XDR_CLIENT_PASSWORD', required=True)
    )
    xdr_api_url: str = field(default=XDR_API_URL, metadata=_env('XDR_API_URL'))
    severities: tuple[int, ...] = field(default=(20, 25, 26, 30), metadata=_env('SYNC_SEVERITIES'))
    lookback_days: int = field(default=7, metadata=_env('SYNC_LOOKBACK_DAYS'))
    tlp: str = field(default='amber', metadata=_env('SYNC_TLP'))
    external_id_prefix: str = field(
        default='spycloud-relay', metadata=_env('SYNC_EXTERNAL_ID_PREFIX')
    )
    window_days: int = field(default=30, metadata=_env('SYNC_WINDOW_DAYS'))
    window_pages: int = field(default=10, metadata=_env('SYNC_WINDOW_PAGES'))
    password_min_length: int = field(
        default=DEFAULT_MIN_LENGTH, metadata=_env('SYNC_PASSWORD_MIN_LENGTH')
    )
    password_require_symbol: bool = field(
        default=False, metadata=_env('SYNC_PASSWORD_REQUIRE_SYMBOL')
    )
    bundle_max: int = field(default=1000, metadata=_env('SYNC_BUNDLE_MAX'))
    checkpoint_file: str = field(
        default_factory=default_checkpoint_file, metadata=_env('SYNC_CHECKPOINT_FILE')
    )
    metrics_port: int = field(default=9091, metadata=_env('SYNC_METRICS_PORT'))

    def __post_init__(self) -> None:
        for required in ('spycloud_api_key', 'xdr_client_id', 'xdr_client_password'):
            _check_secret(required, getattr(self, required))
        object.__setattr__(self, 'xdr_api_url', _xdr_api_url(self.xdr_api_url))
        object.__setattr__(self, 'severities', _severities(self.severities))
        _check_range('SYNC_LOOKBACK_DAYS', self.lookback_days, 1, LOOKBACK_MAX_DAYS)
        _check_range('SYNC_WINDOW_DAYS', self.window_days, 1, LOOKBACK_MAX_DAYS)
        _check_range('SYNC_WINDOW_PAGES', self.window_pages, 1, WINDOW_MAX_PAGES)
        _check_range('SYNC_PASSWORD_MIN_LENGTH', self.password_min_length, 0, MAX_PASSWORD_LENGTH)
        _check_range('SYNC_BUNDLE_MAX', self.bundle_max, MIN_BUNDLE, BUNDLE_MAX)
        _check_range('SYNC_METRICS_PORT', self.metrics_port, 1, 65535)
        if self.tlp not in TLPS:
            raise ConfigError(f'SYNC_TLP must be one of {", ".join(TLPS)}, got {self.tlp!r}')
        if not PREFIX.fullmatch(self.external_id_prefix):
            raise ConfigError(
                'SYNC_EXTERNAL_ID_PREFIX must be 1 to 40 lower-case letters, digits and dashes, '
                f'got {self.external_id_prefix!r}'
            )
        if not self.checkpoint_file.strip():
            raise ConfigError('SYNC_CHECKPOINT_FILE must name a file')

    @property
    def password_policy(self) -> PasswordPolicy:
        """The policy the incidents' sightings check exposed passwords against (observe's
        module fields custom_password_policy_*, for a run that has no module)."""
        return PasswordPolicy(
            min_length=self.password_min_length, require_symbol=self.password_require_symbol
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> 'SyncSettings':
        """The settings from variables named by each field's ``env``; an unset or blank one
        takes its default (a secret has none: it is required)."""
        values: dict[str, Any] = {}
        for setting in fields(cls):
            name = setting.metadata['env']
            raw = env.get(name, '').strip()
            if raw:
                values[setting.name] = _parse(name, raw, setting.default)
            elif setting.metadata['required']:
                raise ConfigError(f'{name} is required (see "Sync settings" in the README)')
        return cls(**values)


def _parse(name: str, raw: str, default: object) -> Any:
    """The typed value of a variable's text (its checks come after, in __post_init__)."""
    if isinstance(default, bool):
        flag = parse_flag(raw)
        if flag is None:
            raise ConfigError(f'{name} must be true or false, got {raw[:40]!r}')
        return flag
    if isinstance(default, tuple):
        return tuple(_integer(name, part, 'a comma list of integers') for part in raw.split(','))
    if isinstance(default, int):
        return _integer(name, raw, 'an integer')
    return raw.lower() if name == 'SYNC_TLP' else raw


def _integer(name: str, raw: str, what: str) -> int:
    value = parse_int(raw)
    if value is None:
        raise ConfigError(f'{name} must be {what}, got {raw!r}')
    return value


def _check_secret(attribute: str, value: str) -> None:
    """Present and printable (it goes into a header); its value is never quoted."""
    name = SyncSettings.__dataclass_fields__[attribute].metadata['env']
    if not value.strip():
        raise ConfigError(f'{name} is required (see "Sync settings" in the README)')
    if not value.isprintable() or value != value.strip():
        raise ConfigError(f'{name} holds spaces at its ends or characters that cannot be sent')


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f'{name} must be from {low} to {high}, got {value}')


def _severities(values: tuple[int, ...]) -> tuple[int, ...]:
    """Each a SpyCloud severity, each once, in ascending order."""
    unknown = ','.join(str(value) for value in values if value not in SEVERITIES)
    if unknown or not values:
        known = ','.join(map(str, SEVERITIES))
        raise ConfigError(
            f'SYNC_SEVERITIES must be a comma list of {known}, got {unknown or "none"}'
        )
    return tuple(sorted(set(values)))


def _xdr_api_url(url: str) -> str:
    """``https://host[:port][/path]`` without the trailing ``/``; ``http://`` only to this
    machine (a local simulator): the token and the client password travel on it."""
    try:
        parts = _split(url.strip())
    except ValueError:
        raise ConfigError('XDR_API_URL must be scheme://host[:port][/path]') from None
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ConfigError('XDR_API_URL must be scheme://host[:port][/path], without user or query')
    if not parts.hostname or parts.scheme not in ('https', 'http'):
        raise ConfigError(f'XDR_API_URL must be an https:// URL, got {url.strip()!r}')
    if parts.scheme == 'http' and not _loopback(parts.hostname):
        raise ConfigError(
            f'XDR_API_URL must be https:// (http:// only to localhost), got {url.strip()!r}'
        )
    return url.strip().rstrip('/')


def _split(url: str) -> SplitResult:
    """Its parts; ValueError for what is no URL (unmatched brackets, a port that is no number)."""
    parts = urlsplit(url)
    _ = parts.port
    return parts


def _loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
