"""The customer's SpyCloud watchlist: is an identifier on it, and the writes that change it.

SpyCloud searches only the ACTIVE and VERIFIED identifiers of a key's watchlist, so these are
the calls behind XDR's response actions. [ASSUME] (spec §5): an identifier not on the list
answers 404 (an empty result is read the same way), adding one already there answers 409,
removing one already gone 404: each is the state asked for, so the writes are idempotent.

Only SpyCloud's own 404 means "not on the watchlist": a JSON object in the shape of its
service's errors (``errorType``, ``errorMessage``, as its 400s are). Any other 404 (an HTML
page, an API Gateway's ``{"message": "Not Found"}`` or ``Missing Authentication Token``, no
body) comes from a wrong SPYCLOUD_API_URL, and reading it as "already gone" would report a
removal that never happened: it is an error.
"""

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from spycloud_relay.errors import InvalidArgumentError, NotFoundError
from spycloud_relay.spycloud.batching import fold_case
from spycloud_relay.spycloud.failures import BadRequest
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.transport import Transport

WRONG_URL = (
    "The SpyCloud API answered 404 Not Found, not in SpyCloud's words about a watchlist "
    'item: check SPYCLOUD_API_URL.'
)
# A hostname of LDH labels (letters, digits, inner hyphens; an IDN in its xn-- form), at least
# two, the last not all digits; an address is a dot-atom local part @ such a hostname.
_LABEL = r'[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?'
HOSTNAME = re.compile(rf'(?=[a-z0-9.-]{{4,253}}\Z)(?:{_LABEL}\.)+(?![0-9]+\Z){_LABEL}')
_ATOM = r"[a-z0-9!#$&'*+=^_{|}~-]+"
LOCAL_PART = re.compile(rf'(?=.{{1,64}}\Z){_ATOM}(?:\.{_ATOM})*')

# Second-level public suffixes under which the third label is still the registered domain.
SECOND_LEVEL_SUFFIXES = frozenset(
    {
        'co.uk',
        'org.uk',
        'ac.uk',
        'gov.uk',
        'com.au',
        'net.au',
        'org.au',
        'co.nz',
        'co.jp',
        'ne.jp',
        'co.kr',
        'com.br',
        'com.mx',
        'com.cn',
        'com.tw',
        'co.in',
        'co.za',
        'com.sg',
        'com.tr',
        'co.il',
    }
)
TYPES_BY_OBSERVABLE = {'email': ('email',), 'domain': ('domain', 'subdomain'), 'ip': ('ip',)}


def watchlist_type(observable_type: str, value: str) -> str | None:
    """The watchlist type of an observable (``email``, ``domain``, ``subdomain``, ``ip``), or
    None when the value is not one: anything but an IPv4 address, a hostname of LDH labels, or
    a dot-atom address at one (no port, path, space, control character or look-alike)."""
    value = fold_case(value)
    if observable_type == 'email':
        local, _, domain = value.rpartition('@')
        return 'email' if LOCAL_PART.fullmatch(local) and HOSTNAME.fullmatch(domain) else None
    if observable_type == 'ip':
        try:
            return 'ip' if ipaddress.ip_address(value).version == 4 else None
        except ValueError:
            return None
    if observable_type == 'domain' and HOSTNAME.fullmatch(value):
        labels = value.split('.')
        registered = 3 if '.'.join(labels[-2:]) in SECOND_LEVEL_SUFFIXES else 2
        return 'subdomain' if len(labels) > registered else 'domain'
    return None


def identifier(value: str) -> str:
    """The form an identifier is sent and shown in (ASCII case folded, as SpyCloud files it)."""
    return fold_case(value)


@dataclass(frozen=True)
class WatchlistItem:
    """One identifier on the watchlist, as SpyCloud describes it."""

    identifier: str
    type: str
    status: str
    verified: bool

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], identifier: str) -> 'WatchlistItem':
        return cls(
            identifier=str(raw.get('identifier_name') or identifier),
            type=str(raw.get('identifier_type') or ''),
            status=str(raw.get('status') or '').upper(),
            verified=str(raw.get('verified') or '').upper() in ('YES', 'TRUE', '1'),
        )

    @property
    def is_domain(self) -> bool:
        return self.type in ('domain', 'subdomain')


class Watchlist:
    """The watchlist calls, over the client's transport (pacing, deadline, retries)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def item(self, lookup: Lookup, identifier: str) -> WatchlistItem | None:
        """The identifier's entry, or None when it is not on the watchlist."""
        status, body = self._transport.call(lookup, 'GET', _path(identifier), expect=(404,))
        results = body.get('results') if isinstance(body, dict) else None
        if (
            _absent(status, body)
            or not isinstance(results, list)
            or not results
            or not isinstance(results[0], dict)
        ):
            return None
        return WatchlistItem.from_api(results[0], identifier)

    def add(self, lookup: Lookup, identifier: str, kind: str) -> str:
        """``added`` or ``already there``; a refused type is ``invalid argument``."""
        try:
            status, _ = self._transport.call(
                lookup,
                'POST',
                'watchlist/create',
                expect=(409,),
                body={'identifier': identifier, 'watchlist_type': kind},
            )
        except BadRequest as error:
            raise InvalidArgumentError(
                f'SpyCloud refused to add {identifier} as a {kind}: {error}'
            ) from None
        return 'already there' if status == 409 else 'added'

    def remove(self, lookup: Lookup, identifier: str) -> str:
        """``removed`` or ``already gone``."""
        status, body = self._transport.call(
            lookup, 'DELETE', _path(identifier) + '/delete', expect=(404,)
        )
        return 'already gone' if _absent(status, body) else 'removed'

    def verify(self, lookup: Lookup, identifier: str) -> str:
        """``verified`` or ``not verified`` (SpyCloud found no proof yet)."""
        try:
            status, body = self._transport.call(
                lookup, 'GET', _path(identifier) + '/verify', expect=(404,)
            )
        except BadRequest as error:
            raise InvalidArgumentError(f'SpyCloud does not verify {identifier}: {error}') from None
        if _absent(status, body):
            raise NotFoundError(f'{identifier} is not on the SpyCloud watchlist.')
        verified = str((body or {}).get('verified', 'YES')).upper() in ('YES', 'TRUE', '1')
        return 'verified' if verified else 'not verified'


def _absent(status: int, body: object) -> bool:
    """Whether SpyCloud said the identifier is not on the watchlist; a 404 in any other words
    is a wrong SPYCLOUD_API_URL."""
    if status != 404:
        return False
    if isinstance(body, dict) and any(
        isinstance(body.get(name), str) for name in ('errorType', 'errorMessage')
    ):
        return True
    raise NotFoundError(WRONG_URL)


def _path(identifier: str) -> str:
    return 'watchlist/' + quote(identifier, safe='@')
