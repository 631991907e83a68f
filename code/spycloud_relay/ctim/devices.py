"""An infected device in a sighting: its endpoint target and its other exposed applications.

Pure functions over the Compass summary (spycloud/compass.py). An account's infostealer
records from one machine make one sighting, not one each: the newest record is the sighting,
the others are counted in it. CTIM has no "infected machine" observable, so the device is the
sighting's target of type ``endpoint`` (its hostnames, IPs and MACs as observables, its OS),
as Cisco's EDR relays describe a device (the sighted record's own facts added to Compass's);
what else the machine lost is a row per application
in the sighting's data table (host, credentials, newest infection), never a secret value.
"""

from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

from spycloud_relay.spycloud.compass import Device, wanted_machine, with_record
from spycloud_relay.spycloud.models import BreachRecord, Exposure

# Applications listed in one sighting's table: the newest infections first.
APPLICATIONS_SHOWN = 50
APPLICATION_COLUMNS = (
    {'name': 'exposed_application', 'type': 'string', 'required': False},
    {'name': 'application_credentials', 'type': 'integer', 'required': False},
    {'name': 'application_newest_infection', 'type': 'string', 'required': False},
)

# A record, and the records of the same account and machine it stands for (itself first).
Group = tuple[BreachRecord, list[BreachRecord], Device | None]


def groups(exposure: Exposure, account_of: Callable[[BreachRecord], Hashable]) -> list[Group]:
    """The exposure's records as sightings-to-be, in order: one per (machine, account) for the
    machines Compass described, one per record otherwise."""
    out: list[Group] = []
    index: dict[tuple[str, Hashable], int] = {}
    for record in exposure.records:
        machine = wanted_machine(record.get('infected_machine_id'))
        device = exposure.devices.get(machine) if machine is not None else None
        if device is None or machine is None:
            out.append((record, [record], None))
            continue
        key = (machine, account_of(record))
        if key in index:
            out[index[key]][1].append(record)
            continue
        index[key] = len(out)
        out.append((record, [record], device))
    return out


def endpoint_target(device: Device, observed: dict[str, str]) -> dict[str, Any]:
    """The machine as CTIM's IdentitySpecification of type ``endpoint``."""
    observables = [{'type': 'hostname', 'value': h} for h in device.hostnames]
    observables += [{'type': 'ipv6' if ':' in ip else 'ip', 'value': ip} for ip in device.ips]
    observables += [{'type': 'mac_address', 'value': mac} for mac in device.macs]
    target: dict[str, Any] = {
        'type': 'endpoint',
        'observables': observables,
        'observed_time': observed,
    }
    if device.os:
        target['os'] = device.os
    return target


def annotate(doc: dict[str, Any], group: list[BreachRecord], device: Device) -> None:
    """A record's sighting made the device's: endpoint target first, the account's other
    records on it counted, the machine's applications in the data table."""
    facts = with_record(device, group[0].fields)
    doc['targets'] = [endpoint_target(facts, doc['observed_time']), *doc['targets']]
    doc['count'] = len(group)
    name = device.hostnames[0] if device.hostnames else 'an infected device'
    doc['description'] += (
        f'. Stolen by malware from {name}: {len(group)} record(s) of this account, '
        f'{len(device.applications)} application(s) exposed on the device'
    )
    doc['data'] = with_applications(doc['data'], device)


def with_applications(table: dict[str, Any], device: Device) -> dict[str, Any]:
    """The record's table with three columns more and a row per application (the record's
    own values on the first row only)."""
    columns = [*table['columns'], *APPLICATION_COLUMNS]
    own = table['rows'][0] if table['rows'] else []
    blank = [''] * len(own)
    shown = device.applications[:APPLICATIONS_SHOWN]
    rows = [
        [*(own if i == 0 else blank), app.domain, app.credentials, _time(app.newest_infection)]
        for i, app in enumerate(shown)
    ]
    if not rows:
        rows = [[*own, '', 0, '']]
    left = len(device.applications) - len(shown)
    if left > 0:
        rows.append([*blank, f'and {left} more application(s)', 0, ''])
    return {'columns': columns, 'rows': rows, 'row_count': len(rows)}


def _time(moment: datetime | None) -> str:
    if moment is None:
        return ''
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec='milliseconds') + 'Z'
