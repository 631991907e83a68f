"""Refer's links into SpyCloud: its portal, and the catalog page of each breach source that
exposed an observable. Pure.

SpyCloud publishes no portal page per e-mail, domain, IP or username, so the search link opens
the portal's home (the scheme and host of SPYCLOUD_UI_URL) for the analyst to search there. A
source's page is SPYCLOUD_UI_URL with the catalog's uuid, made only from a uuid of letters,
digits and dashes (``Catalog.portal_id``), as observe's links are. Ids follow Cisco's relays
(``ref-<module>-search-<type>-<url-quoted value>``), so the same link has the same id in every
answer.
"""

import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from spycloud_relay.errors import RelayError
from spycloud_relay.spycloud.models import Catalog, Exposure, Observable

MODULE = 'spycloud'
VENDOR = 'SpyCloud'
# What the analyst reads for each observable type refer takes (CTIM's names are terse).
LABELS = {'email': 'email', 'domain': 'domain', 'ip': 'IP', 'ipv6': 'IPv6', 'user': 'username'}
MAX_TITLE = 200  # a breach title is whoever fed the breach's; a menu entry stays one short line

# What each observable ends in: its Exposure, or the RelayError that stopped its lookup.
Result = Exposure | RelayError
Ref = dict[str, Any]


def portal_home(ui_url: str) -> str | None:
    """The portal's home page: SPYCLOUD_UI_URL's scheme and host (None if it has neither)."""
    parts = urlsplit(ui_url)
    if parts.scheme not in ('https', 'http') or not parts.netloc:
        return None
    return f'{parts.scheme}://{parts.netloc}/'


def ref_id(kind: str, observable: Observable, *more: str) -> str:
    """``ref-spycloud-<kind>-<type>-<url-quoted value>[-<more>...]``: deterministic, and one
    value's ids never those of another (the value is quoted whole, ``more`` has no dash)."""
    parts = [f'ref-{MODULE}', kind, observable.type.replace('_', '-'), quote(observable.value, '')]
    return '-'.join([*parts, *more])


def label(observable: Observable) -> str:
    return LABELS.get(observable.type, observable.type)


def search_ref(observable: Observable, home: str) -> Ref:
    """The portal, where the analyst searches for the value."""
    return {
        'id': ref_id('search', observable),
        'title': f'Search for this {label(observable)}',
        'description': f'Open the {VENDOR} portal and search for this {label(observable)} there',
        'url': home,
        'categories': [VENDOR, 'Search'],
    }


def catalog_ref(observable: Observable, catalog: Catalog, ui_url: str) -> Ref | None:
    """The catalog page of a breach source that exposed the value; None without a safe uuid."""
    uuid = catalog.portal_id
    if uuid is None:
        return None
    title = plain(catalog.text('title') or '') or f'breach source {catalog.id}'
    return {
        'id': ref_id('catalog', observable, str(catalog.id)),
        'title': f'{VENDOR} breach: {title}',
        'description': f'The {VENDOR} catalog page of {title}, '
        f'a breach source that exposed this {label(observable)}',
        'url': ui_url.format(uuid=uuid),
        'categories': [VENDOR, 'Breach'],
    }


def references(observable: Observable, result: Result, ui_url: str) -> list[Ref]:
    """The portal search, then the page of each source of the records found (newest first)."""
    home = portal_home(ui_url)
    refs = [search_ref(observable, home)] if home else []
    if isinstance(result, RelayError):
        return refs
    for source_id in dict.fromkeys(r.source_id for r in result.records):
        catalog = result.catalogs.get(source_id) if source_id is not None else None
        ref = catalog_ref(observable, catalog, ui_url) if catalog is not None else None
        if ref is not None:
            refs.append(ref)
    return refs


def refer_answer(
    observables: Iterable[Observable], results: Iterable[Result], ui_url: str
) -> tuple[list[Ref], list[RelayError]]:
    """Every observable's links, and what stopped or cut short a lookup (its portal link
    stays: it needs no lookup)."""
    refs: list[Ref] = []
    errors: list[RelayError] = []
    for observable, result in zip(observables, results, strict=True):
        refs.extend(references(observable, result, ui_url))
        errors.extend([result] if isinstance(result, RelayError) else result.warnings)
    return refs, errors


def plain(value: str) -> str:
    """One line of at most MAX_TITLE characters, no control or format character."""
    kept = ''.join(
        ' ' if ch.isspace() else ch
        for ch in value
        if ch.isspace() or unicodedata.category(ch) not in ('Cc', 'Cf')
    )
    line = ' '.join(kept.split())
    return line if len(line) <= MAX_TITLE else line[: MAX_TITLE - 1] + '…'
