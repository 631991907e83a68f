"""XDR response actions on the SpyCloud watchlist: what to offer for an observable, as XDR
shows it. Pure functions, no I/O.

Offers follow the identifier's state: not on the watchlist → add; a domain on it but not yet
verified → verify; on it → remove, only where the module allows removal (it stops monitoring).
"""

from dataclasses import dataclass
from typing import Any

from spycloud_relay.spycloud.watchlist import WatchlistItem

ADD, VERIFY, REMOVE = (
    'spycloud-watchlist-add',
    'spycloud-watchlist-verify',
    'spycloud-watchlist-remove',
)
CATEGORIES = ['SpyCloud', 'Watchlist']
# The observable types each action takes.
TAKES = {ADD: ('email', 'domain', 'ip'), VERIFY: ('domain',), REMOVE: ('email', 'domain', 'ip')}


@dataclass(frozen=True)
class Target:
    """An observable as the watchlist knows it: its value and its watchlist type."""

    observable_type: str
    value: str
    watchlist_type: str


def offers(target: Target, item: WatchlistItem | None, removal: bool) -> list[dict[str, Any]]:
    """The actions for one observable, given whether (and how) it is on the watchlist."""
    if item is None:
        return [action(ADD, target)]
    found = []
    if item.is_domain and not item.verified:
        found.append(action(VERIFY, target))
    if removal:
        found.append(action(REMOVE, target))
    return found


def action(action_id: str, target: Target) -> dict[str, Any]:
    title, description = _words(action_id, target)
    return {
        'id': action_id,
        'title': title,
        'description': description,
        'categories': list(CATEGORIES),
        'query-params': {
            'observable_type': target.observable_type,
            'observable_value': target.value,
            'watchlist_type': target.watchlist_type,
        },
    }


def _words(action_id: str, target: Target) -> tuple[str, str]:
    value, kind = target.value, target.watchlist_type
    if action_id == VERIFY:
        return (
            f'Verify {value} on the SpyCloud watchlist',
            f'SpyCloud checks the DNS verification record of {value}; once it is found, '
            'SpyCloud searches the breach data of the domain and its addresses.',
        )
    if action_id == REMOVE:
        return (
            f'Remove {value} from the SpyCloud watchlist',
            f'SpyCloud stops monitoring {value}: it is no longer searched, and SpyCloud '
            'refuses lookups of it with this key.',
        )
    if kind == 'email':
        detail = (
            'An address at a domain the watchlist has verified is searched at once; a '
            'personal address first gets a verification mail, and is searched once its '
            'owner confirms.'
        )
    elif kind == 'ip':
        detail = 'SpyCloud searches the infostealer logs of machines seen with this address.'
    else:
        detail = (
            'SpyCloud searches it once you prove you own it with a DNS record; then use '
            f'"Verify {value} on the SpyCloud watchlist".'
        )
    return (
        f'Add {value} to the SpyCloud watchlist',
        f'SpyCloud adds {value} to your watchlist as a {kind}. {detail}',
    )


def masked(value: str) -> str:
    """An identifier for a log line: ``j***@example.com``, ``e***.org``, ``192.0.***``."""
    if '@' in value:
        local, _, domain = value.rpartition('@')
        return f'{local[:1]}***@{domain}'
    if value.replace('.', '').isdigit():
        return '.'.join(value.split('.')[:2]) + '.***'
    head, _, rest = value.partition('.')
    return f'{head[:1]}***.{rest}' if rest else f'{value[:1]}***'
