"""The infected-devices tiles: their definitions, and their data from one Infected picture.

Beside the watchlist's exposure tiles (tiles/dashboard.py), from another source: SpyCloud
Compass's ``compass/devices`` over the period (tiles/devices_gather.py). A metric group of
totals and a markdown table of the newest infections, the shapes the XDR module surface spec
(§4) gives. Pure: the picture and the times are given. A device shows its hostname, IPs, OS,
application count and dates; never an account, a password, a cookie or a token (a device
summary carries none). Without a Compass licence the tiles say so instead of failing.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from spycloud_relay.ctim.markdown import text
from spycloud_relay.errors import RelayWarning
from spycloud_relay.spycloud.compass_devices import DeviceSummary
from spycloud_relay.tiles.aggregate import Period
from spycloud_relay.tiles.dashboard import definition, envelope, metric

DEVICES_SUMMARY, NEWEST_DEVICES = 'spycloud-infected-devices-summary', 'spycloud-infected-devices'
TAGS = ['SpyCloud', 'Compass', 'Infected devices']
NEWEST = 10  # rows of the table
UNLICENSED = RelayWarning(
    'permission denied',
    'SpyCloud Compass refused this API key (HTTP 403): its account has no Compass licence, so '
    'the infected-devices tiles are empty.',
)


def _tile(tile_id: str, kind: str, title: str, short: str, long: str) -> dict[str, Any]:
    return definition(tile_id, kind, title, short, long, TAGS)


TILES = [
    _tile(
        DEVICES_SUMMARY,
        'metric_group',
        'Infected devices summary',
        'Infected devices, applications exposed, devices infected in the period',
        'From SpyCloud Compass (a Compass licence is needed): the infected devices published '
        'in the period, the applications their malware logs exposed (summed over the devices) '
        'and how many of the devices were infected within the period itself.',
    ),
    _tile(
        NEWEST_DEVICES,
        'markdown',
        'Infected devices',
        'The newest infected devices: host, IPs, OS, applications exposed',
        f'From SpyCloud Compass (a Compass licence is needed): the {NEWEST} most recently '
        'infected of the devices published in the period, newest infection first: hostname, '
        'IP addresses, operating system, applications exposed, infection and publish dates. '
        'No account, password or cookie is shown.',
    ),
]
BY_ID = {tile['id']: tile for tile in TILES}


@dataclass
class Infected:
    """A period's infected devices, as the tiles need them: totals and the newest few."""

    period: Period
    licensed: bool = True
    devices: int = 0
    applications: int = 0
    infected_within: int = 0
    newest: list[DeviceSummary] = field(default_factory=list)
    warnings: list[RelayWarning] = field(default_factory=list)

    @classmethod
    def of(cls, period: Period, devices: tuple[DeviceSummary, ...]) -> 'Infected':
        """The devices published within the period (one without a date: SpyCloud listed it
        for the period), counted, the NEWEST newest infections kept."""
        kept = [d for d in devices if d.published is None or period.start <= d.published]
        kept = [d for d in kept if d.published is None or d.published <= period.end]
        kept.sort(key=_newest_first, reverse=True)
        return cls(
            period,
            devices=len(kept),
            applications=sum(d.applications or 0 for d in kept),
            infected_within=sum(
                1 for d in kept if d.infected and period.start <= d.infected <= period.end
            ),
            newest=kept[:NEWEST],
        )


def _newest_first(device: DeviceSummary) -> tuple[bool, datetime, bool, datetime, str]:
    """Infected newest first (undated last), then published newest first, then by id."""
    never = datetime.min.replace(tzinfo=UTC)  # SpyCloud's times are read as UTC (aware)
    infected = device.infected or never
    published = device.published or never
    return (
        device.infected is not None,
        infected,
        device.published is not None,
        published,
        device.machine_id,
    )


def tile_data(
    tile_id: str, infected: Infected, computed_at: datetime, ttl_s: float
) -> dict[str, Any]:
    """XDR's tile data: the period observed, how long it may be shown, and the tile's data."""
    doc = envelope(infected.period, computed_at, ttl_s)
    doc.update(BUILDERS[tile_id](infected))
    return doc


def summary(infected: Infected) -> dict[str, Any]:
    if not infected.licensed:
        return {'data': []}
    return {
        'data': [
            metric('device-type', 'Infected devices', infected.devices),
            metric('bulleted-list', 'Applications exposed', infected.applications),
            metric('critical-stop', 'Infected within the period', infected.infected_within),
        ]
    }


def newest_devices(infected: Infected) -> dict[str, Any]:
    if not infected.licensed:
        return {'data': [f'*{UNLICENSED.message}*']}
    lines = [
        f'**{infected.devices} infected device(s)** published in the period, '
        f'{infected.applications} application(s) exposed.',
        '',
        '| Device | IP addresses | OS | Applications exposed | Infected | Published |',
        '| --- | --- | --- | ---: | --- | --- |',
    ]
    for device in infected.newest:
        lines.append(
            f'| {text(device.hostname or "machine " + device.machine_id)} | '
            f'{text(", ".join(device.ips) or "—")} | {text(device.os or "—")} | '
            f'{"—" if device.applications is None else device.applications} | '
            f'{_when(device.infected)} | {_when(device.published, date_only=True)} |'
        )
    if not infected.newest:
        lines[2:] = ['No infected devices in the period.']
    elif infected.devices > len(infected.newest):
        lines.append(f'\nThe {len(infected.newest)} newest infections of {infected.devices}.')
    if infected.warnings:
        lines += ['', '*Partial: ' + '; '.join(w.message for w in infected.warnings) + '*']
    return {'data': lines}


BUILDERS: dict[str, Callable[[Infected], dict[str, Any]]] = {
    DEVICES_SUMMARY: summary,
    NEWEST_DEVICES: newest_devices,
}


def _when(moment: datetime | None, date_only: bool = False) -> str:
    if moment is None:
        return '—'
    return moment.date().isoformat() if date_only else moment.strftime('%Y-%m-%d %H:%M UTC')


def to_json(infected: Infected) -> dict[str, Any]:
    """What a store keeps (state/codec.py's JSON-like data), warnings included."""
    period = infected.period
    return {
        'period': [period.name, period.start.isoformat(), period.end.isoformat()],
        'counts': [infected.licensed, infected.devices, infected.applications],
        'infected_within': infected.infected_within,
        'newest': [_device_json(d) for d in infected.newest],
        'warnings': [[w.code, w.message] for w in infected.warnings],
    }


def from_json(data: Mapping[str, Any]) -> Infected:
    name, start, end = data['period']
    licensed, devices, applications = data['counts']
    return Infected(
        Period(name, datetime.fromisoformat(start), datetime.fromisoformat(end)),
        licensed=licensed,
        devices=devices,
        applications=applications,
        infected_within=data['infected_within'],
        newest=[_device_of(parts) for parts in data['newest']],
        warnings=[RelayWarning(code, message) for code, message in data['warnings']],
    )


def _device_json(device: DeviceSummary) -> list[Any]:
    return [
        device.machine_id,
        device.hostname,
        list(device.ips),
        device.os,
        device.applications,
        device.published.isoformat() if device.published else None,
        device.infected.isoformat() if device.infected else None,
    ]


def _device_of(parts: list[Any]) -> DeviceSummary:
    machine, hostname, ips, os, applications, published, infected = parts
    return DeviceSummary(
        machine,
        hostname,
        tuple(ips),
        os,
        applications,
        datetime.fromisoformat(published) if published else None,
        datetime.fromisoformat(infected) if infected else None,
    )
