"""What a record exposed, in words an analyst acts on: the password's type and whether it met
the customer's policy (never the password), a stolen session, and what to do next. Pure.

The policy check runs in memory on the plaintext SpyCloud sent (or cracked); only its outcome
(``too short (7 < 12)``) leaves this module. The remediation follows SpyCloud's
post-infection order: reset the password, revoke the sessions, isolate and re-image the
device, then look for the password's reuse on other accounts.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from spycloud_relay.spycloud.models import BreachRecord, parse_time

DEFAULT_MIN_LENGTH = 12
MAX_PASSWORD_LENGTH = 256  # a policy's longest minimum: the module field's, the sync's, the CLI's
SESSION_SEVERITIES = frozenset({26, 30})
DEVICE_SEVERITY = 25
TYPE_MAX = 40  # a hash type is a short word; anything longer is cut
DOMAIN_MAX = 253
# A cookie's domain as browsers write it (``.example.com``); anything else is not shown in the
# description (its own column still has it, as a plain string).
COOKIE_DOMAIN = re.compile(r'\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*')


@dataclass(frozen=True)
class PasswordPolicy:
    """The customer's password policy: a minimum length (0: none) and a symbol required."""

    min_length: int = DEFAULT_MIN_LENGTH
    require_symbol: bool = False


@dataclass(frozen=True)
class Exposed:
    """What a record (or several) gave away, as far as remediation cares."""

    password: bool = False
    sessions: bool = False
    device: bool = False

    def __or__(self, other: 'Exposed') -> 'Exposed':
        return Exposed(
            self.password or other.password,
            self.sessions or other.sessions,
            self.device or other.device,
        )


def _text(value: object, limit: int = TYPE_MAX) -> str | None:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


def _is_masked(value: str) -> bool:
    return set(value) == {'*'}


def _plaintext(record: BreachRecord) -> str | None:
    """The password in clear when SpyCloud has it (original or cracked), else None."""
    cracked = record.get('password_plaintext')
    if isinstance(cracked, str) and cracked and not _is_masked(cracked):
        return cracked
    password = record.get('password')
    kind = (_text(record.get('password_type')) or '').lower()
    if kind == 'plaintext' and isinstance(password, str) and password:
        return None if _is_masked(password) else password
    return None


def _has_password(record: BreachRecord) -> bool:
    return any(record.get(name) not in (None, '') for name in ('password', 'password_plaintext'))


def _all_masked(record: BreachRecord) -> bool:
    values = [record.get(name) for name in ('password', 'password_plaintext')]
    shown = [value for value in values if value not in (None, '')]
    return all(isinstance(value, str) and _is_masked(value) for value in shown)


def password_type(record: BreachRecord) -> str:
    """``plaintext``, ``hashed (bcrypt)``, ``hashed (md5), cracked``, ``masked``,
    ``unknown type`` or ``none``."""
    if not _has_password(record):
        return 'none'
    kind = _text(record.get('password_type'))
    plaintext = _plaintext(record)
    if kind is not None and kind.lower() != 'plaintext':
        return f'hashed ({kind})' + (', cracked' if plaintext is not None else '')
    if plaintext is not None:
        return 'plaintext'
    return 'masked' if _all_masked(record) else 'unknown type'


UNKNOWN_BECAUSE = {'masked': 'unknown (masked)', 'unknown type': 'unknown (type not given)'}


def policy_check(record: BreachRecord, policy: PasswordPolicy) -> str:
    """Whether the exposed password met the policy, never the password itself."""
    if not _has_password(record):
        return 'no password'
    plaintext = _plaintext(record)
    if plaintext is None:
        return UNKNOWN_BECAUSE.get(password_type(record), 'unknown (hashed)')
    if not policy.min_length and not policy.require_symbol:
        return 'not checked (no policy)'
    failed = []
    if len(plaintext) < policy.min_length:
        failed.append(f'too short ({len(plaintext)} < {policy.min_length})')
    if policy.require_symbol and not any(_is_symbol(ch) for ch in plaintext):
        failed.append('no symbol')
    return ', '.join(failed) or 'meets policy'


def _is_symbol(ch: str) -> bool:
    return not ch.isalnum() and not ch.isspace()


def exposed(record: BreachRecord) -> Exposed:
    """What ``record`` gave away: a password, sessions (26, 30 or a cookie), a device (25 or an
    infected machine id)."""
    score = record.severity or 0
    cookie = any(
        str(name).lower().startswith('cookie') and value not in (None, '')
        for name, value in record.fields.items()
    )
    return Exposed(
        password=_has_password(record) or score >= 20,
        sessions=score in SESSION_SEVERITIES or cookie,
        device=score == DEVICE_SEVERITY or _text(record.get('infected_machine_id')) is not None,
    )


def by_severity(score: int) -> Exposed:
    """What a record of severity ``score`` gives away at the least."""
    return Exposed(
        password=score >= 20,
        sessions=score in SESSION_SEVERITIES,
        device=score == DEVICE_SEVERITY,
    )


def remediation(what: Exposed) -> str:
    """One line, in SpyCloud's post-infection order."""
    steps = []
    if what.password:
        steps.append('reset the password')
    if what.sessions:
        steps.append('revoke the active sessions')
    if what.device:
        steps.append('isolate and re-image the device')
    if what.password:
        steps.append('check the password for reuse on other accounts')
    if not steps:
        return 'No credential exposed: watch the account for phishing.'
    return (steps[0][0].upper() + '; '.join(steps)[1:]) + '.'


def session_words(record: BreachRecord) -> str | None:
    """``Session stolen`` (26) or ``Cookies stolen`` (30), with the cookie's domain and expiry
    where the record has them; None for any other record. Never a cookie's name or value."""
    score = record.severity
    if score not in SESSION_SEVERITIES:
        return None
    words = 'Session stolen' if score == 26 else 'Cookies stolen'
    details = []
    domain = _text(record.get('cookie_domain'), DOMAIN_MAX)
    if domain and COOKIE_DOMAIN.fullmatch(domain):
        details.append(f'cookie domain {domain}')
    expiry = cookie_expiry(record)
    if expiry:
        details.append(f'expires {expiry}')
    return f'{words} ({", ".join(details)})' if details else words


def cookie_expiry(record: BreachRecord) -> str | None:
    """The cookie's expiry as ``2027-01-31T12:00:00Z``, when it is a date the relay reads."""
    for name in ('cookie_expiration', 'cookie_expires', 'cookie_expiry'):
        moment = parse_time(record.get(name))
        if isinstance(moment, datetime):
            return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec='seconds') + 'Z'
    return None
