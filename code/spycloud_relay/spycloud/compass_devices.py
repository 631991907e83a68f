"""The infected devices SpyCloud Compass lists over a window of days (``compass/devices``).

The dashboard's infected-devices tiles read it (tiles/devices.py). A device summary carries
the machine's id, hostname, IPs, OS, how many applications its logs exposed, and when it was
infected and published (the SpyCloud API spec, §2.4): no account, password or cookie, and
only those fields are kept. ``since``/``until`` are date-only (as Compass takes them) and
``until`` is the day after the window's last, as the watchlist windows ask it: whether
SpyCloud reads it as that day's start or end, the window is whole, and the tiles keep the
devices published within their period. Paged by cursor, at most MAX_PAGES pages.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from spycloud_relay.deadline import DeadlineReached
from spycloud_relay.errors import RelayError, RelayWarning
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.compass import shown_hostname, shown_ip, shown_text, wanted_machine
from spycloud_relay.spycloud.failures import BadRequest
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import parse_time
from spycloud_relay.spycloud.transport import Transport

DEVICES_LIST = 'compass/devices'
MAX_PAGES = 10  # 1000 devices a page
MAX_IPS = 5


@dataclass(frozen=True)
class DeviceSummary:
    """One infected machine as ``compass/devices`` sums it up (never a secret value)."""

    machine_id: str
    hostname: str | None
    ips: tuple[str, ...]
    os: str | None
    applications: int | None
    published: datetime | None
    infected: datetime | None


@dataclass(frozen=True)
class DeviceList:
    """The devices that arrived; ``stopped`` says why paging ended early (None: all came)."""

    devices: tuple[DeviceSummary, ...]
    stopped: RelayWarning | None = None


def infected_devices(transport: Transport, lookup: Lookup, first: date, last: date) -> DeviceList:
    """The devices of the days ``first`` to ``last``, page by page. What fails the first
    page is raised (``Refused``: no Compass licence; a RelayError, ``BadRequest`` or
    ``DeadlineReached``); a later page's failure ends the list with a warning."""
    params = {'since': first.isoformat(), 'until': (last + timedelta(days=1)).isoformat()}
    found: dict[str, DeviceSummary] = {}
    cursor: dict[str, str] = {}
    for pages in range(MAX_PAGES):
        try:
            page = transport.get(lookup, DEVICES_LIST, {**params, **cursor}, final=(403,))
        except (RelayError, BadRequest, DeadlineReached) as error:
            if pages == 0:
                raise
            return DeviceList(tuple(found.values()), _page_failed(lookup, error, pages))
        for device in _devices(page):
            found.setdefault(device.machine_id, device)
        following = page.get('cursor')
        if not (isinstance(following, str) and following.strip()):
            return DeviceList(tuple(found.values()))
        cursor = {'cursor': following}
    return DeviceList(tuple(found.values()), TOO_MANY)


TOO_MANY = RelayWarning(
    'too many records',
    f'SpyCloud Compass lists more than {MAX_PAGES} pages of infected devices in the period; '
    'the tiles count the devices of the first pages.',
)


def _page_failed(lookup: Lookup, error: Exception, pages: int) -> RelayWarning:
    if isinstance(error, DeadlineReached):
        return warnings.cut_short(lookup.deadline, 'the infected devices of Compass')
    reason = error.message if isinstance(error, RelayError) else str(error)
    return RelayWarning(
        'incomplete',
        f'SpyCloud Compass failed on page {pages + 1} of the infected devices ({reason[:300]}); '
        f'the devices of the first {pages} page(s) are counted.',
    )


def _devices(page: Mapping[str, Any]) -> list[DeviceSummary]:
    results = page.get('results')
    found = (summary(raw) for raw in (results if isinstance(results, list) else ()))
    return [device for device in found if device is not None]


def summary(raw: object) -> DeviceSummary | None:
    """A device summary read from what SpyCloud sent; None without a usable machine id."""
    if not isinstance(raw, Mapping):
        return None
    machine = wanted_machine(raw.get('infected_machine_id'))
    if machine is None:
        return None
    ips = raw.get('ip_addresses')
    shown_ips = (shown_ip(ip) for ip in (ips if isinstance(ips, list) else ()))
    count = raw.get('application_count')
    return DeviceSummary(
        machine_id=machine,
        hostname=shown_hostname(raw.get('user_hostname')),
        ips=tuple(dict.fromkeys(ip for ip in shown_ips if ip))[:MAX_IPS],
        os=shown_text(raw.get('user_os')),
        applications=count
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0
        else None,
        published=parse_time(raw.get('spycloud_publish_date')),
        infected=parse_time(raw.get('infected_time')),
    )
