"""What an analyst reads in XDR's incident queue: an incident's title, its one-line summary and
its markdown description (what was exposed, when, from which source, what to do).

Every value comes from SpyCloud (and so from whoever fed a breach): titles get it as plain
text on one line, the description through ctim/markdown.py's ``text``, and no secret field is
ever read here (only accounts, devices, application hosts, breach sources and dates). Pure.
"""

import unicodedata
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from spycloud_relay.ctim import markdown
from spycloud_relay.ctim.mapping import UNKNOWN_SOURCE_TITLE, catalog_of
from spycloud_relay.spycloud.models import SEVERITY_NAMES, BreachRecord, Catalog
from spycloud_relay.sync.grouping import Group, account, text

CLIP = 100  # characters of one SpyCloud value in a title or a table cell
LISTED = 3  # applications named in a title
DESCRIPTION_MAX = 5000  # CTIM's markdown field
TITLE_MAX = 1024


def plain(value: object, limit: int = CLIP) -> str:
    """``value`` on one line without control characters, cut at ``limit`` characters."""
    kept = ''.join(
        ' ' if ch.isspace() else ch
        for ch in str(value)
        if ch.isspace() or unicodedata.category(ch) not in ('Cc', 'Cf')
    )
    one_line = ' '.join(kept.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + '…'


def application(record: BreachRecord) -> str | None:
    """The site whose credentials or cookies were stolen: its host, never the URL (a URL's
    query or path can carry a token)."""
    named = text(record, 'target_domain') or text(record, 'cookie_domain')
    if named:
        return named
    url = text(record, 'target_url')
    if not url:
        return None
    try:
        return urlsplit(url if '//' in url else '//' + url).hostname
    except ValueError:
        return None


def applications(group: Group) -> list[str]:
    """The group's applications, newest first, each once."""
    return list(dict.fromkeys(app for r in group.records if (app := application(r))))


def accounts(group: Group) -> list[str]:
    return list(dict.fromkeys(who for r in group.records if (who := account(r))))


def device(group: Group) -> str:
    """``DESKTOP-1AB2C3D / alice@example.org``: the infected machine as a person knows it."""
    hostname = next((h for r in group.records if (h := text(r, 'user_hostname'))), None)
    machine = next((m for r in group.records if (m := text(r, 'infected_machine_id'))), None)
    people = accounts(group)
    parts = [plain(hostname or machine or '')] + [plain(who) for who in people[:1]]
    return ' / '.join(part for part in parts if part) or 'an unnamed device'


def source_title(catalog: Catalog | None) -> str:
    return (catalog.text('title') if catalog is not None else None) or UNKNOWN_SOURCE_TITLE


def exposed(record: BreachRecord) -> str:
    """What one record gave away, in words."""
    score = record.severity or 0
    if score >= 26:
        return 'session cookies'
    if score >= 20:
        return 'password'
    if score >= 5:
        return 'password hash' if record.get('password') is not None else 'personal data'
    return 'e-mail address'


def _listed(names: list[str]) -> str:
    shown = ', '.join(plain(name) for name in names[:LISTED])
    return shown + (', ...' if len(names) > LISTED else '')


def title(group: Group, catalogs: Mapping[int, Catalog]) -> str:
    """The queue's line: who, what, where."""
    newest = group.records[0]
    if group.kind == 'machine':
        count = len(group.records)
        stolen = f'{count} credential{"s" if count != 1 else ""} stolen'
        apps = applications(group)
        made = f'Infostealer on {device(group)}: {stolen}' + (f' ({_listed(apps)})' if apps else '')
    elif group.kind == 'session':
        apps = applications(group)
        made = f'Session cookies stolen from {device(group)}' + (
            f' ({_listed(apps)})' if apps else ''
        )
    else:
        worst = max(group.records, key=lambda r: r.severity or 0)
        where = source_title(catalog_of(catalogs, newest.source_id))
        made = f'{plain(group.key[1])}: {exposed(worst)} exposed in {plain(where)}'
    return plain(made, TITLE_MAX)


def short_description(group: Group, severity: str) -> str:
    count = len(group.records)
    newest = group.records[0].published.date().isoformat()
    people = accounts(group)
    who = plain(people[0]) if people else 'an unnamed account'
    who += f' and {len(people) - 1} more' if len(people) > 1 else ''
    noun = 'record' if count == 1 else 'records'
    return f'{severity}: {count} SpyCloud {noun} of {who}, newest {newest}'


def _row(record: BreachRecord, catalogs: Mapping[int, Catalog], ui_url: str) -> str:
    catalog = catalog_of(catalogs, record.source_id)
    source = markdown.portal_link(
        markdown.text(plain(source_title(catalog))),
        ui_url,
        catalog.portal_id if catalog else None,
    )
    score = record.severity
    level = f'{score} ({SEVERITY_NAMES[score]})' if score in SEVERITY_NAMES else str(score or '')
    cells = [
        record.published.date().isoformat(),
        markdown.text(plain(account(record) or '')),
        markdown.text(plain(exposed(record))),
        markdown.text(plain(application(record) or '')),
        markdown.text(level),
        source,
    ]
    return '| ' + ' | '.join(cells) + ' |'


def advice(group: Group) -> Iterator[str]:
    """SpyCloud's remediation order: credentials, then sessions, then the device."""
    scores = {r.severity for r in group.records}
    people = ', '.join(markdown.text(plain(who)) for who in accounts(group)[:LISTED])
    yield f'- Reset the password of {people or "the exposed accounts"}, and wherever it was reused.'
    if scores & {26, 30}:
        yield '- Revoke the active sessions: stolen cookies log in without the password.'
    if 25 in scores:
        yield f'- Isolate and re-image {markdown.text(device(group))}: an infostealer ran on it.'


TABLE_HEAD = [
    '| Published | Account | Exposed | Application | Severity | Source |',
    '|---|---|---|---|---|---|',
]
SOURCES_LISTED = 3


def sources(group: Group, catalogs: Mapping[int, Catalog], ui_url: str) -> list[str]:
    """One line per breach source (at most a few): its portal page and SpyCloud's account of it."""
    found = [c for r in group.records if (c := catalog_of(catalogs, r.source_id)) is not None]
    unique = list({catalog.id: catalog for catalog in found}.values())[:SOURCES_LISTED]
    lines = []
    for catalog in unique:
        label = markdown.text(plain(source_title(catalog)))
        link = markdown.portal_link(label, ui_url, catalog.portal_id)
        about = catalog.text('description')
        lines.append(f'- {link}' + (f': {markdown.text(plain(about, 300))}' if about else ''))
    return lines


def description(group: Group, catalogs: Mapping[int, Catalog], ui_url: str) -> str:
    """The markdown an analyst opens: the records as a table (newest first, as many as CTIM's
    5000 characters hold), the sources, and what to do."""
    records = group.records
    oldest, newest = records[-1].published.date(), records[0].published.date()
    when = newest.isoformat() if oldest == newest else f'{oldest.isoformat()} to {newest}'
    noun = 'record' if len(records) == 1 else 'records'
    head = [
        f'**{markdown.text(title(group, catalogs))}**',
        '',
        f'SpyCloud published {len(records)} {noun} of this exposure ({when}):',
        '',
        *TABLE_HEAD,
    ]
    tail = ['', '**Sources**', '', *sources(group, catalogs, ui_url)]
    tail += ['', '**What to do**', '', *advice(group)]
    budget = DESCRIPTION_MAX - len('\n'.join(head + tail)) - 80
    rows: list[str] = []
    for record in records:
        row = _row(record, catalogs, ui_url)
        if len(row) + 1 > budget:
            rows += ['', f'... and {len(records) - len(rows)} more.']
            break
        rows.append(row)
        budget -= len(row) + 1
    return '\n'.join(head + rows + tail)[:DESCRIPTION_MAX]
