"""ModuleSettings: the XDR module instance's configuration, from verified claims.

XDR strips the ``custom_`` prefix of each configuration_spec key, so the form's
``custom_key`` arrives as the claim ``key``. These settings belong to one
request and travel explicitly through the call chain. A value the relay cannot
use falls back to its default and says so in a warning, so a typo in the
module's form does not silently change what analysts see.
"""
from dataclasses import dataclass, field
from datetime import date, timedelta

from errors import AuthorizationError, RelayWarning
from config import parse_flag
from spycloud.lookup import UNSENDABLE_KEY, sendable_key

DEFAULT_ENTITIES_LIMIT = 100
MAX_ENTITIES_LIMIT = 1000
SEVERITY_LEVELS = (2, 5, 20, 25)
# The severities SpyCloud documents, including the newer session-cookie ones (26, 30).
KNOWN_SEVERITIES = (2, 5, 20, 25, 26, 30)
MAX_LOOKBACK_DAYS = 36500


@dataclass(frozen=True)
class ModuleSettings:
    api_key: str
    entities_limit: int = DEFAULT_ENTITIES_LIMIT
    show_passwords: bool = False
    min_severity: int = 0
    lookback_days: int = 0
    warnings: tuple = field(default=(), compare=False)

    @classmethod
    def from_claims(cls, claims):
        """Raise KeyError when the API key is missing: the caller maps it to an auth error."""
        api_key = claims['key']
        if not isinstance(api_key, str) or not api_key.strip():
            raise KeyError('key')
        if not sendable_key(api_key.strip()):
            raise AuthorizationError(UNSENDABLE_KEY)  # never quoted: it is the secret
        warnings = []
        min_severity = _choice(claims.get('min_severity'), SEVERITY_LEVELS, 'custom_min_severity',
                               warnings)
        lookback = _days(claims.get('lookback_days'), warnings)
        show = flag(claims.get('show_passwords'), default=None)
        if show is None:
            if claims.get('show_passwords') is not None:
                warnings.append(_ignored('custom_show_passwords', claims['show_passwords'],
                                         'true or false', 'false'))
            show = False
        return cls(
            api_key=api_key.strip(),
            entities_limit=entities_limit(claims.get('CTR_ENTITIES_LIMIT')),
            show_passwords=show,
            min_severity=min_severity,
            lookback_days=lookback,
            warnings=tuple(warnings),
        )

    def severity_filter(self):
        """SpyCloud's ``severity`` parameter (an exact-match list) for the minimum, or None."""
        if not self.min_severity:
            return None
        return ','.join(str(s) for s in KNOWN_SEVERITIES if s >= self.min_severity)

    def since(self, today=None):
        """SpyCloud's ``since`` parameter for the look-back window, or None for all time."""
        if not self.lookback_days:
            return None
        return ((today or date.today()) - timedelta(days=self.lookback_days)).isoformat()

    def query(self, today=None):
        """The filters every records call carries."""
        params = {'severity': self.severity_filter(), 'since': self.since(today)}
        return {name: value for name, value in params.items() if value is not None}


def entities_limit(raw):
    """Positive integers up to 1000; anything else falls back to 100, as XDR modules do."""
    value = _integer(raw)
    if value is None or value <= 0:
        return DEFAULT_ENTITIES_LIMIT
    return min(value, MAX_ENTITIES_LIMIT)


def flag(raw, default):
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        return parse_flag(raw, default)
    return default


def _integer(raw):
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        return int(raw) if isinstance(raw, float) else int(str(raw).strip())
    except (TypeError, ValueError, OverflowError):
        return None


def _choice(raw, options, name, warnings):
    if raw is None or raw == '':
        return 0
    value = _integer(raw)
    if value in options:
        return value
    warnings.append(_ignored(name, raw, f'one of {", ".join(map(str, options))}', 'no minimum'))
    return 0


def _days(raw, warnings):
    if raw is None or raw == '':
        return 0
    value = _integer(raw)
    if value is not None and 0 <= value <= MAX_LOOKBACK_DAYS:
        return value
    warnings.append(_ignored('custom_lookback_days', raw,
                             f'a whole number of days from 0 to {MAX_LOOKBACK_DAYS}', 'all time'))
    return 0


def _ignored(name, raw, expected, default):
    shown = str(raw)[:40]
    return RelayWarning('invalid argument',
                        f'The module setting {name} must be {expected}, not {shown!r}; '
                        f'using {default}.')
