"""Verdict lookups of several e-mails in one call: ``breach/data/emails/a@x.example,b@y.example``.

SpyCloud's OpenAPI reportedly takes up to ten comma-separated addresses (spec §2, a claim
derived from its documentation, not seen in a capture). That makes a cold deliberate of 20
accounts two calls instead of twenty: one round trip, and a tenth of the rate budget.

Nothing may be lost if the claim is wrong. A server that reads ``a@x,b@y`` as one address
would answer an empty 200, and every verdict of the batch would silently vanish. So until an
answer proves that the server reads the list (a record about one of its addresses comes back),
an empty answer is not trusted and the addresses are asked one by one; an answer holding a
record that is about none of them, or one that takes more than a page, is always asked again
that way; and a refusal (a 400), or an empty answer for addresses that alone have records,
before any proof turns batching off for the process.
"""

import logging
import re
import string
import threading
from collections.abc import Mapping
from typing import Any

from spycloud_relay.spycloud.models import Observable

log = logging.getLogger(__name__)

UNKNOWN, PROVEN, OFF = 'unknown', 'proven', 'off'
# What goes in a list: ASCII letters, digits and ``._+-``, one @. Anything odder is asked alone:
# a look-alike (``\u212aate@x``, whose KELVIN SIGN str.lower() folds to ``k``) is never filed
# under another address, a comma or a % (``%2C`` once a gateway decodes it) never splits one
# value into two, and a 400 for a list is about the list, not about one strange value in it.
PLAIN_ADDRESS = re.compile(r'[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+')
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold_case(value: str) -> str:
    """ASCII letters in lower case, nothing else changed: no look-alike becomes ASCII."""
    return value.translate(_ASCII_LOWER)


def account(value: str) -> str:
    """The address SpyCloud files records under, the one form the relay compares and files
    addresses in: ASCII case does not matter to it; nothing else is folded."""
    return fold_case(value.strip())


class EmailBatching:
    """What this process has learnt about SpyCloud reading a list of e-mails, and how to use it.

    Shared by every request of the process; its one field only ever moves from UNKNOWN to
    PROVEN or OFF, once (a compare-and-set under a lock): a list answer that arrives after
    another request turned lists off is used, but does not turn them back on.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.state = UNKNOWN if size > 1 else OFF
        self._lock = threading.Lock()

    def _settle(self, state: str, why: str, *args: object) -> None:
        """Move from UNKNOWN to ``state``, logging ``why`` once; later news changes nothing."""
        with self._lock:
            if self.state != UNKNOWN:
                return
            self.state = state
        log.info(why, *args)

    def groups(self, observables: list[Observable]) -> list[list[Observable]]:
        """The observables in groups of one call each: plain e-mail addresses by ``size``
        while batching is not off, then anything else, alone."""
        if self.state == OFF:
            return [[o] for o in observables]
        singles: list[list[Observable]] = []
        emails: list[Observable] = []
        for observable in observables:
            if observable.type == 'email' and PLAIN_ADDRESS.fullmatch(account(observable.value)):
                emails.append(observable)
            else:
                singles.append([observable])
        batches = [emails[i : i + self.size] for i in range(0, len(emails), self.size)]
        return batches + singles

    def refused(self) -> None:
        """SpyCloud answered a list with a 400: before any proof, it does not read lists."""
        self._settle(
            OFF, 'SpyCloud refused a list of e-mails; asking one address per call from now on'
        )

    def asked_alone(self, page: Mapping[str, Any] | None, exposed: bool) -> None:
        """A list's members were asked one by one after it: if the list came back empty while
        one of them has records, the server did not read it as a list."""
        if exposed and page is not None and page.get('results') == []:
            self._settle(
                OFF,
                'SpyCloud answered a list of e-mails with nothing, yet one of them has records; '
                'asking one address per call from now on',
            )

    def read(
        self, page: Mapping[str, Any], members: list[Observable]
    ) -> dict[str, list[Any]] | None:
        """Each member's raw records (by ``account``) when the page settles every member;
        None when the members must be asked one by one."""
        results = page.get('results')
        cursor = page.get('cursor')
        if not isinstance(results, list) or (isinstance(cursor, str) and cursor.strip()):
            return None  # not a page, or more than one: the singles' paging is exact
        found: dict[str, list[Any]] = {account(o.value): [] for o in members}
        for raw in results:
            email = raw.get('email') if isinstance(raw, Mapping) else None
            records = found.get(account(email)) if isinstance(email, str) else None
            if records is None:
                return None  # a record about none of the members: this is no list answer
            records.append(raw)
        if any(found.values()):
            self._settle(
                PROVEN, 'SpyCloud reads lists of e-mails: up to %d addresses per call', self.size
            )
        elif self.state != PROVEN:
            return None  # empty: no record, or a server that read one odd address
        return found
