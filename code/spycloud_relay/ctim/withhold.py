"""What a record's field may show of its value: in clear, masked, or withheld. Pure.

Credentials (passwords, their salts) and payment and identity numbers (card, bank, tax,
driver's licence, passport) are masked: enough to compare
with a known value (``t*****3 (plaintext, 7 chars)``), not to use it; passwords, hashes and
salts are shown in clear only when the module asks (``custom_show_passwords``), the numbers
never. Session secrets (a cookie's name and value,
session ids, tokens) are withheld whatever the module says: a stolen cookie logs in without
the password, and even its name tells an attacker which cookie to plant. A URL shows its host
only: its user part and query can carry a password or a token. Nested objects get the same
treatment, field by field, so a secret inside ``log_data`` is as hidden as one at the top.
"""

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

# Values an analyst must not see by default: credentials, their salts, and the payment and
# identity numbers SpyCloud carries as PII: every card (``cc_number``, ``cc_code``,
# ``cc_expiration``, ``cc_bin``, ``cc_last_four``...) and bank field, and the identity documents.
SECRET_FIELD = re.compile(
    r'(passw|passwd|pwd|salt|secret|token|cookie|session|^cc_|cvv|^bank_|account_number'
    r'|ssn|social_security|national_id|passport|pin_code|tax_?id|drivers?_license)',
    re.IGNORECASE,
)
# Of those, what ``custom_show_passwords`` shows in clear: passwords, their hashes and salts (a
# card, bank or identity number stays masked: the field does not name them).
PASSWORD_FIELD = re.compile(r'(passw|pwd|salt)', re.IGNORECASE)
# Of those, what no setting shows: cookies (their name and value), sessions, tokens.
SESSION_FIELD = re.compile(
    r'(cookie|session|token|jwt|bearer|csrf|xsrf|api_?key|authorization)', re.IGNORECASE
)
# Fields whose names sound secret but hold none: the hash type an analyst weighs, and the
# cookie's domain and expiry, which say where and how long a stolen session works.
NOT_SECRET = frozenset(
    {'password_type', 'cookie_domain', 'cookie_expiration', 'cookie_expires', 'cookie_expiry'}
)
URL_FIELD = re.compile(r'(url|uri)$', re.IGNORECASE)
WITHHELD = '(withheld)'


def is_secret(name: str) -> bool:
    return name not in NOT_SECRET and bool(SECRET_FIELD.search(name))


def is_password(name: str) -> bool:
    """A secret that ``custom_show_passwords`` may show in clear."""
    return is_secret(name) and bool(PASSWORD_FIELD.search(name))


def is_session_secret(name: str) -> bool:
    return name not in NOT_SECRET and bool(SESSION_FIELD.search(name))


def mask(value: object, kind: str | None = None) -> str:
    """``t*****3 (plaintext, 7 chars)``: enough to compare with a known value, not to use it."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text and set(text) == {'*'}:
        return text  # SpyCloud masked it already
    length = len(text)
    shown = f'{text[0]}*****{text[-1]}' if length >= 6 else '*****'
    details = f'{kind}, {length} chars' if kind else f'{length} chars'
    return f'{shown} ({details})'


def host_only(value: str) -> str:
    """A URL's scheme and host: its user, path and query can carry a password or a token."""
    try:
        parts = urlsplit(value if '//' in value else '//' + value)
        host = parts.hostname
    except ValueError:
        host = None
    if not host:
        return mask(value)
    return f'{parts.scheme}://{host}' if parts.scheme else host


def hidden(name: object, value: Any) -> Any:
    """``value`` with what field ``name`` may not show masked or withheld, nested objects and
    lists field by field."""
    if isinstance(name, str) and is_session_secret(name):
        return WITHHELD
    if isinstance(name, str) and is_secret(name):
        return mask(value)
    if isinstance(name, str) and URL_FIELD.search(name) and isinstance(value, str):
        return host_only(value)
    if isinstance(value, Mapping):
        return {key: hidden(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [hidden(name, item) for item in value]
    return value
