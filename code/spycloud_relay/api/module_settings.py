"""ModuleSettings: the XDR module instance's configuration, from verified claims.

XDR strips the ``custom_`` prefix of each configuration_spec key, so the form's
``custom_key`` arrives as the claim ``key``. These settings belong to one
request and travel explicitly through the call chain. A value the relay cannot
use falls back to its default and says so in a warning, so a typo in the
module's form does not silently change what analysts see.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from spycloud_relay.config import parse_flag, parse_int
from spycloud_relay.ctim.facts import DEFAULT_MIN_LENGTH, MAX_PASSWORD_LENGTH, PasswordPolicy
from spycloud_relay.ctim.mapping import MappingOptions
from spycloud_relay.errors import AuthorizationError, RelayWarning
from spycloud_relay.spycloud.lookup import UNSENDABLE_KEY, VerdictRule, sendable_key
from spycloud_relay.spycloud.models import severities_from

DEFAULT_ENTITIES_LIMIT = 100
MAX_ENTITIES_LIMIT = 1000
SEVERITY_LEVELS = (2, 5, 20, 25)
VERDICT_SEVERITIES = (20, 25, 30)
DEFAULT_VERDICT_SEVERITY = 20
DEFAULT_VERDICT_DAYS = 90
MAX_DAYS = 36500


@dataclass(frozen=True)
class ModuleSettings:
    api_key: str
    entities_limit: int = DEFAULT_ENTITIES_LIMIT
    show_passwords: bool = False
    min_severity: int = 0
    lookback_days: int = 0
    verdict_min_severity: int = DEFAULT_VERDICT_SEVERITY
    verdict_days: int = DEFAULT_VERDICT_DAYS
    watchlist_actions: bool = True
    watchlist_removal: bool = False
    password_policy: PasswordPolicy = PasswordPolicy()
    warnings: tuple[RelayWarning, ...] = field(default=(), compare=False)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> 'ModuleSettings':
        """Raise KeyError when the API key is missing: the caller maps it to an auth error."""
        api_key = claims['key']
        if not isinstance(api_key, str) or not api_key.strip():
            raise KeyError('key')
        if not sendable_key(api_key.strip()):
            raise AuthorizationError(UNSENDABLE_KEY)  # never quoted: it is the secret
        form = _Form(claims)
        return cls(
            api_key=api_key.strip(),
            entities_limit=entities_limit(claims.get('CTR_ENTITIES_LIMIT')),
            show_passwords=form.flag('show_passwords', False),
            min_severity=form.choice('min_severity', SEVERITY_LEVELS, 0, 'no minimum'),
            lookback_days=form.days('lookback_days', 0, 'all time'),
            verdict_min_severity=form.choice(
                'verdict_min_severity', VERDICT_SEVERITIES, DEFAULT_VERDICT_SEVERITY
            ),
            verdict_days=form.days('verdict_days', DEFAULT_VERDICT_DAYS),
            watchlist_actions=form.flag('watchlist_actions', True),
            watchlist_removal=form.flag('watchlist_removal', False),
            password_policy=PasswordPolicy(
                min_length=form.length('password_policy_min_length', DEFAULT_MIN_LENGTH),
                require_symbol=form.flag('password_policy_require_symbol', False),
            ),
            warnings=tuple(form.warnings),
        )

    def mapping_options(self, ui_url: str) -> MappingOptions:
        """How the mapping shows this module's records: passwords masked or not, its policy."""
        return MappingOptions(
            show_passwords=self.show_passwords, ui_url=ui_url, policy=self.password_policy
        )

    def severity_filter(self) -> str | None:
        """SpyCloud's ``severity`` parameter (an exact-match list) for the minimum, or None."""
        return severities_from(self.min_severity) if self.min_severity else None

    def since(self, today: date | None = None) -> str | None:
        """SpyCloud's ``since`` parameter for the look-back window, or None for all time."""
        if not self.lookback_days:
            return None
        return ((today or date.today()) - timedelta(days=self.lookback_days)).isoformat()

    def query(self, today: date | None = None) -> dict[str, str]:
        """The filters every records call carries."""
        params = {'severity': self.severity_filter(), 'since': self.since(today)}
        return {name: value for name, value in params.items() if value is not None}

    def verdict_rule(self, today: date | None = None) -> VerdictRule | None:
        """The rule for verdicts, or None when the module turned them off (0 days)."""
        if not self.verdict_days:
            return None
        return VerdictRule(self.verdict_min_severity, self.verdict_days, today or date.today())


class _Form:
    """Reads the optional module fields; a value it cannot use is its default, and a warning."""

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self._claims = claims
        self.warnings: list[RelayWarning] = []

    def _raw(self, name: str) -> object:
        raw = self._claims.get(name)
        return None if raw is None or raw == '' else raw

    def flag(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        value = flag(raw, default=None)
        if value is None and raw is not None:
            self._ignored(name, raw, 'true or false', str(default).lower())
        return default if value is None else value

    def choice(
        self, name: str, options: tuple[int, ...], default: int, default_text: str = ''
    ) -> int:
        raw = self._raw(name)
        value = integer(raw)
        if raw is not None and value not in options:
            self._ignored(
                name, raw, f'one of {", ".join(map(str, options))}', default_text or str(default)
            )
        return value if value is not None and value in options else default

    def days(self, name: str, default: int, default_text: str = '') -> int:
        raw = self._raw(name)
        value = integer(raw)
        if value is not None and 0 <= value <= MAX_DAYS:
            return value
        if raw is not None:
            self._ignored(
                name,
                raw,
                f'a whole number of days from 0 to {MAX_DAYS}',
                default_text or f'{default} days',
            )
        return default

    def length(self, name: str, default: int) -> int:
        """A password length from 0 (no minimum) to MAX_PASSWORD_LENGTH characters."""
        raw = self._raw(name)
        value = integer(raw)
        if value is not None and 0 <= value <= MAX_PASSWORD_LENGTH:
            return value
        if raw is not None:
            self._ignored(
                name,
                raw,
                f'a whole number of characters from 0 to {MAX_PASSWORD_LENGTH}',
                f'{default} characters',
            )
        return default

    def _ignored(self, name: str, raw: object, expected: str, default: str) -> None:
        shown = str(raw)[:40]
        self.warnings.append(
            RelayWarning(
                'invalid argument',
                f'The module setting custom_{name} must be {expected}, not '
                f'{shown!r}; using {default}.',
            )
        )


def entities_limit(raw: Any) -> int:
    """Positive integers up to 1000; anything else falls back to 100, as XDR modules do."""
    value = integer(raw)
    if value is None or value <= 0:
        return DEFAULT_ENTITIES_LIMIT
    return min(value, MAX_ENTITIES_LIMIT)


def flag(raw: Any, default: bool | None) -> bool | None:
    """A boolean claim: a JSON boolean, or one of config's true/false words."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        return parse_flag(raw, default)
    return default


def integer(raw: Any) -> int | None:
    """An integer claim, as config.parse_int reads one; a finite float is its whole part
    (``12.7`` is 12), as the relay has always read it."""
    if isinstance(raw, float) and math.isfinite(raw):
        return int(raw)
    return parse_int(raw)
