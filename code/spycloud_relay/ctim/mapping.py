"""SpyCloud records and catalogs → CTIM documents. Pure functions, no I/O (an infected
device's part of a sighting: ctim/devices.py).

Ids are deterministic (uuid5 of SpyCloud's own ids), so the same breach is the
same entity in every answer and XDR can merge and de-duplicate it.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import NAMESPACE_X500, uuid5

from spycloud_relay.ctim import devices, facts
from spycloud_relay.ctim.facts import PasswordPolicy
from spycloud_relay.ctim.withhold import (
    WITHHELD,
    hidden,
    is_password,
    is_secret,
    is_session_secret,
    mask,
)
from spycloud_relay.spycloud import batching
from spycloud_relay.spycloud.models import BreachRecord, Catalog, Exposure, Observable

SCHEMA_VERSION = '1.0.17'
SOURCE = 'SpyCloud'
RELATION_ORIGIN = 'SpyCloud Breach Module'
SIGHTING_TITLE = 'Reported to SpyCloud'
UNKNOWN_SOURCE_TITLE = 'an undisclosed breach source'

# Fields already shown elsewhere in the sighting, or ids that mean nothing to an analyst.
HIDDEN_FIELDS = frozenset(
    {
        'sighting',
        'infected_machine_id',
        'email_domain',
        'domain',
        'email_username',
        'document_id',
        'source_id',
        'spycloud_publish_date',
        'severity',
    }
)
SECRET_KINDS = {'password': None, 'password_plaintext': 'plaintext', 'salt': 'salt'}

DOMAIN = re.compile(
    r'^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$'
)

CONFIDENCE: dict[float, str] = {1: 'High', 2: 'Medium', 3: 'Low'}
MAX_COUNT = 2**63 - 1  # CTIM's count is an int64


@dataclass(frozen=True)
class MappingOptions:
    show_passwords: bool = False
    ui_url: str = 'https://portal.spycloud.com/breach/catalog/{uuid}'
    policy: PasswordPolicy = PasswordPolicy()


def transient_id(kind: str, seed: object) -> str:
    return f'transient:{kind}-{uuid5(NAMESPACE_X500, str(seed))}'


def ctim_time(moment: datetime) -> str:
    """CTIM's preferred form: ``2020-01-09T00:00:00.000Z`` (in UTC; ``isoformat`` writes
    years below 1000 with four digits, where the C library's ``%Y`` would not)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec='milliseconds') + 'Z'


def severity(record: BreachRecord, catalog: Catalog | None) -> str:
    """SpyCloud severity → CTIM; a combo list is Medium whatever the record says."""
    if catalog is not None and catalog.is_combo_list:
        return 'Medium'
    score = record.severity
    if score is None:
        return 'Unknown'
    if score <= 2:
        return 'Low'
    if score <= 5:
        return 'Medium'
    if score < 25:
        return 'High'
    return 'Critical'


def confidence(catalog: Catalog) -> str:
    raw = catalog.get('confidence')
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return 'Low'  # a list or an object would not even be a key to look up
    return CONFIDENCE.get(raw, 'Low')


def catalog_of(catalogs: Mapping[int, Catalog], source_id: int | None) -> Catalog | None:
    """A record's breach source among those found; a record that names none has none."""
    return None if source_id is None else catalogs.get(source_id)


def breached_domain(catalog: Catalog | None) -> str | None:
    """The catalog's site when it is a real domain (not "n/a", a URL or an address)."""
    if catalog is None:
        return None
    site = catalog.text('site')
    if not site:
        return None
    site = site.lower().rstrip('.')
    return site if DOMAIN.match(site) else None


def cell(value: object) -> str:
    """A data-table cell: strings as they are, lists joined, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ', '.join(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def shown(name: str, record: BreachRecord, options: MappingOptions) -> str:
    """A field's cell: session secrets withheld, credentials masked unless the module shows
    passwords, URLs as their host, and nested secrets hidden field by field."""
    value = record.fields[name]
    if is_session_secret(name):
        return WITHHELD
    if not is_secret(name):
        return cell(hidden(name, value))
    if options.show_passwords and is_password(name):
        return cell(value)
    kind = SECRET_KINDS.get(name, None)
    if name == 'password':
        kind = _text(record.get('password_type'))
    return mask(value, kind)


def facts_of(record: BreachRecord, options: MappingOptions) -> dict[str, str]:
    """The columns the relay works out: the password's type and policy check, what to do."""
    return {
        'password_type': facts.password_type(record),
        'password_policy': facts.policy_check(record, options.policy),
        'remediation': facts.remediation(facts.exposed(record)),
    }


def data_table(record: BreachRecord, options: MappingOptions) -> dict[str, Any]:
    """The record's fields (what must not show masked or withheld), then the relay's facts."""
    cells: dict[str, str] = {}
    for name, value in record.fields.items():
        if not isinstance(name, str) or name in HIDDEN_FIELDS or value is None:
            continue
        cells[name] = shown(name, record, options)
    cells.update(facts_of(record, options))
    columns = [{'name': name, 'type': 'string'} for name in cells]
    return {'columns': columns, 'rows': [list(cells.values())]}


def external_ids(record: BreachRecord) -> list[str]:
    ids = [record.document_id]
    if record.source_id is not None:
        ids.append(str(record.source_id))
    machine = _text(record.get('infected_machine_id'))
    if machine:
        ids.append(machine)
    return ids


def leaked_from(account: Observable, catalog: Catalog | None) -> list[dict[str, Any]]:
    """``account Leaked_From site``: the graph edge XDR draws between a person and a breach."""
    domain = breached_domain(catalog)
    if not domain:
        return []
    return [
        {
            'origin': RELATION_ORIGIN,
            'relation': 'Leaked_From',
            'source': account.as_ctim(),
            'related': {'type': 'domain', 'value': domain},
        }
    ]


def sighting_id(observable: Observable, record: BreachRecord) -> str:
    """One sighting per record and observable: a domain lookup and an e-mail lookup in one
    request may find the same record, and each is a sighting of its own observable."""
    if observable.type == 'email':
        return transient_id('sighting', record.document_id)
    return transient_id('sighting', f'{record.document_id}|{observable.type}|{observable.value}')


def exposed_accounts(observable: Observable, record: BreachRecord) -> list[Observable]:
    """Who is exposed: the queried e-mail itself, or the record's e-mail and username when the
    lookup was by domain, IP or username."""
    if observable.type == 'email':
        return [observable]
    accounts = []
    email = _text(record.get('email'))
    if email and '@' in email:
        accounts.append(Observable(type='email', value=batching.account(email)))
    username = _text(record.get('username'))
    if username:
        accounts.append(Observable(type='user', value=username))
    return accounts


def targets(
    observable: Observable, record: BreachRecord, observed: dict[str, str]
) -> list[dict[str, Any]]:
    accounts = exposed_accounts(observable, record)
    if not accounts:
        return []
    return [
        {
            'type': accounts[0].type,
            'observables': [account.as_ctim() for account in accounts],
            'observed_time': observed,
        }
    ]


def sighting_count(raw: object) -> int:
    """The record's ``sighting`` when it is a count CTIM can hold (int64), else 1."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw <= MAX_COUNT:
        return raw
    return 1


def description(record: BreachRecord, title: str | None) -> str:
    """``Present in <source>``; a stolen session (26, 30) says so first, with the cookie's
    domain and expiry (never its name or value)."""
    present = f'Present in {title or UNKNOWN_SOURCE_TITLE}'
    session = facts.session_words(record)
    if session is None:
        return present
    return cut(f'{session}: {present[0].lower()}{present[1:]}', TEXT_LIMITS['description'])


def sighting(
    observable: Observable,
    record: BreachRecord,
    catalog: Catalog | None,
    options: MappingOptions,
) -> dict[str, Any]:
    observed = {'start_time': ctim_time(record.published), 'end_time': ctim_time(record.published)}
    title = catalog.text('title') if catalog is not None else None
    doc: dict[str, Any] = {
        'id': sighting_id(observable, record),
        'type': 'sighting',
        'schema_version': SCHEMA_VERSION,
        'source': SOURCE,
        'title': SIGHTING_TITLE,
        'description': description(record, title),
        'confidence': 'High',
        'internal': False,
        'count': sighting_count(record.get('sighting')),
        'severity': severity(record, catalog),
        'observed_time': observed,
        'observables': [observable.as_ctim()],
        'targets': targets(observable, record, observed),
        'relations': [
            relation
            for account in exposed_accounts(observable, record)
            for relation in leaked_from(account, catalog)
        ],
        'external_ids': external_ids(record),
        'data': data_table(record, options),
    }
    portal_id = catalog.portal_id if catalog is not None else None
    if portal_id:
        doc['source_uri'] = options.ui_url.format(uuid=portal_id)
    return doc


# CTIM's limits (characters) of the texts an indicator carries.
TEXT_LIMITS = {'title': 1024, 'short_description': 2048, 'description': 5000}


def cut(text: str, limit: int) -> str:
    """A text within CTIM's limit for its field (XDR refuses a longer one), marked as cut."""
    return text if len(text) <= limit else text[: limit - 1] + '…'


def indicator(catalog: Catalog, options: MappingOptions) -> dict[str, Any]:
    """A breach source as an Indicator; its texts cut to CTIM's limits (a catalog's title
    over 1024 characters made XDR refuse the indicator and every link to it)."""
    title = catalog.text('title') or f'SpyCloud breach source {catalog.id}'
    doc: dict[str, Any] = {
        'id': transient_id('indicator', catalog.id),
        'type': 'indicator',
        'schema_version': SCHEMA_VERSION,
        'producer': SOURCE,
        'source': SOURCE,
        'title': cut(title, TEXT_LIMITS['title']),
        'short_description': cut(title, TEXT_LIMITS['short_description']),
        'description': cut(catalog.text('description') or title, TEXT_LIMITS['description']),
        'confidence': confidence(catalog),
        'valid_time': {},
        'external_ids': [str(catalog.id)],
        'external_references': external_references(catalog, options),
        'tags': catalog_tags(catalog),
    }
    published = catalog.published
    if published:
        doc['valid_time'] = {'start_time': ctim_time(published)}
    uuid = catalog.text('uuid')
    if uuid:
        doc['external_ids'].append(uuid)
    if catalog.portal_id:
        doc['source_uri'] = options.ui_url.format(uuid=catalog.portal_id)
    tlp = catalog.text('tlp')
    if tlp and tlp.lower() in ('white', 'green', 'amber', 'red'):
        doc['tlp'] = tlp.lower()
    return doc


def external_references(catalog: Catalog, options: MappingOptions) -> list[dict[str, str]]:
    references: list[dict[str, str]] = []
    domain = breached_domain(catalog)
    site_description = catalog.text('site_description')
    if domain and site_description:
        references.append(
            {'source_name': SOURCE, 'description': site_description, 'url': f'https://{domain}'}
        )
    uuid, description = catalog.portal_id, catalog.text('description')
    if uuid and description:
        references.append(
            {
                'source_name': SOURCE,
                'description': description,
                'url': options.ui_url.format(uuid=uuid),
                'external_id': uuid,
            }
        )
    return references


def catalog_tags(catalog: Catalog) -> list[str]:
    assets = catalog.get('assets')
    tags = [name for name in assets if isinstance(name, str)] if isinstance(assets, dict) else []
    return tags


def relationship(sighting_doc: dict[str, Any], indicator_doc: dict[str, Any]) -> dict[str, Any]:
    return {
        'id': transient_id('relationship', f'{sighting_doc["id"]}|{indicator_doc["id"]}'),
        'type': 'relationship',
        'schema_version': SCHEMA_VERSION,
        'source': SOURCE,
        'relationship_type': 'sighting-of',
        'source_ref': sighting_doc['id'],
        'target_ref': indicator_doc['id'],
    }


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def exposure_entities(
    exposure: Exposure, options: MappingOptions
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Sightings (newest first), one Indicator per breach source, and the links between them.
    An account's records from one infected machine Compass described are one sighting
    (ctim/devices.py), linked to each of their sources."""
    sightings: list[dict[str, Any]] = []
    indicators: dict[int, dict[str, Any]] = {}
    relationships: list[dict[str, Any]] = []
    observable = exposure.observable
    for record, group, device in devices.groups(exposure, partial(_account_key, observable)):
        doc = sighting(observable, record, catalog_of(exposure.catalogs, record.source_id), options)
        if device is not None:
            devices.annotate(doc, group, device)
        sightings.append(doc)
        for source_id in dict.fromkeys(r.source_id for r in group):
            catalog = catalog_of(exposure.catalogs, source_id)
            if catalog is None:
                continue
            if catalog.id not in indicators:
                indicators[catalog.id] = indicator(catalog, options)
            relationships.append(relationship(doc, indicators[catalog.id]))
    return sightings, list(indicators.values()), relationships


def _account_key(observable: Observable, record: BreachRecord) -> tuple[Observable, ...]:
    return tuple(exposed_accounts(observable, record))
