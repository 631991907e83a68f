"""The infected devices of observe's infostealer records, from SpyCloud Compass.

A severity-25 record names the machine malware stole it from (``infected_machine_id``). The
analyst's next question is what else that machine lost, so observe asks Compass for every
record of the machines at once (``compass/data/devices/{id,id,...}``, SpyCloud's comma list)
beside the catalogs, and keeps of them only a summary (``Device``): the machine's hostname,
IPs, MAC and OS, and per exposed application its credential count and newest infection. No
password, cookie or token value is kept, and a target URL is reduced to its host. Summaries
are cached per key like catalogs (CATALOG_CACHE_TTL_S, CATALOG_CACHE_SIZE). A key without
the Compass product (403) costs one warning and observe answers without the devices; the
refusal is remembered as long, so the key's next requests warn without asking again.
"""

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from spycloud_relay.deadline import DeadlineReached
from spycloud_relay.errors import RelayError, RelayWarning
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.catalogs import cache_lookup
from spycloud_relay.spycloud.failures import BadRequest, Refused
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import parse_time
from spycloud_relay.spycloud.pool import Pools, waited
from spycloud_relay.spycloud.transport import Transport
from spycloud_relay.state import Store, codec

DEVICES_PATH = 'compass/data/devices/'
# Machines per call (a comma list), and the pages one call may follow (1000 records each).
BATCH = 10
MAX_PAGES = 10
MAX_ID_CHARS = 128
MAX_FACTS = 10  # hostnames, IPs, MACs kept per device
MAC = re.compile(r'^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$')
HOSTNAME = re.compile(r'^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,253}[A-Za-z0-9])?$')

TOO_MANY = RelayWarning(
    'too many records',
    f'SpyCloud Compass holds more than {MAX_PAGES} pages of records of the infected devices; '
    'the first pages are summarised.',
)
NO_LICENCE = RelayWarning(
    'permission denied',
    'SpyCloud Compass refused this API key (HTTP 403): its account has no Compass licence, so '
    'the infected devices of infostealer records are not shown.',
)


@dataclass(frozen=True)
class Application:
    """One site the device's logs hold credentials of: its host, how many, newest infection."""

    domain: str
    credentials: int
    newest_infection: datetime | None


@dataclass(frozen=True)
class Device:
    """An infected machine as Compass knows it, summarised (never a secret value)."""

    machine_id: str
    hostnames: tuple[str, ...]
    ips: tuple[str, ...]
    macs: tuple[str, ...]
    os: str | None
    records: int
    applications: tuple[Application, ...]


# (found, warnings): machine id → Device, and what went wrong.
Devices = tuple[dict[str, Device], list[RelayWarning]]


def wanted_machine(value: object) -> str | None:
    """A machine id Compass can be asked about in a comma list, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > MAX_ID_CHARS or any(c in text for c in ',/?#%\\') or '*' in text:
        return None
    return text if text.isprintable() else None


class Compass:
    """Compass device lookups over the client's transport, a devices cache and pools."""

    def __init__(self, transport: Transport, cache: Store, pools: Pools) -> None:
        self._transport = transport
        self._cache = cache
        self._pools = pools

    def devices(self, lookup: Lookup, machines: list[str]) -> Devices:
        """The devices of ``machines``: cache first, the rest ten a call, all calls at once."""
        fingerprint = lookup.fingerprint
        keys = {m: ('device', fingerprint, m) for m in machines}
        unlicensed = ('unlicensed', fingerprint)
        cached = self._cache.get_many([unlicensed, *keys.values()], secret=lookup.api_key)
        if cached.get(unlicensed):
            return {}, [NO_LICENCE]  # refused within CATALOG_CACHE_TTL_S: not asked again
        found = {m: cached[k] for m, k in keys.items() if k in cached}
        todo = [m for m in machines if m not in found]
        cache_lookup('devices', hits=len(found), misses=len(todo))
        lookup.stats.add(cache_hits=len(found), cache_misses=len(todo))
        said: list[RelayWarning] = []
        if not todo:
            return found, said
        chunks = [todo[i : i + BATCH] for i in range(0, len(todo), BATCH)]
        with self._pools.open(len(chunks), 'compass') as pool:
            futures = [pool.submit(self._fetch, lookup, chunk) for chunk in chunks]
            done = waited(futures, lookup, margin=0.5)
        for future in futures:
            if future not in done:
                said.append(warnings.cut_short(lookup.deadline, 'the Compass devices'))
                continue
            devices, whole, warning = future.result()
            found.update(devices)
            said.extend(self._remember(lookup, keys, devices, whole, warning))
        return found, said

    def _remember(
        self,
        lookup: Lookup,
        keys: dict[str, tuple[str, str, str]],
        devices: dict[str, Device],
        whole: bool,
        warning: RelayWarning | None,
    ) -> list[RelayWarning]:
        """Cache what one call told in full (or the key's refusal); its warning, if any."""
        if warning is NO_LICENCE:
            self._cache.set(('unlicensed', lookup.fingerprint), True, secret=lookup.api_key)
        if whole:
            self._cache.set_many({keys[m]: d for m, d in devices.items()}, secret=lookup.api_key)
        return [warning] if warning is not None else []

    def _fetch(
        self, lookup: Lookup, machines: list[str]
    ) -> tuple[dict[str, Device], bool, RelayWarning | None]:
        """(devices, whole, warning) of one comma-list call, its pages followed."""
        path = DEVICES_PATH + ','.join(quote(m, safe='') for m in machines)
        records: list[Mapping[str, Any]] = []
        cursor: dict[str, str] = {}
        try:
            for _ in range(MAX_PAGES):
                page = self._transport.get(lookup, path, cursor, final=(403,))
                records.extend(r for r in _results(page) if isinstance(r, Mapping))
                following = page.get('cursor')
                if not (isinstance(following, str) and following.strip()):
                    return summarise(machines, records), True, None
                cursor = {'cursor': following}
            return summarise(machines, records), False, TOO_MANY
        except Refused:
            return {}, False, NO_LICENCE
        except BadRequest as error:
            return summarise(machines, records), False, _failed(str(error))
        except DeadlineReached:
            cut = warnings.cut_short(lookup.deadline, 'the records of the Compass devices')
            return summarise(machines, records), False, cut
        except RelayError as error:
            return summarise(machines, records), False, _failed(error.message)


def _failed(message: str) -> RelayWarning:
    return RelayWarning(
        'unknown', f'SpyCloud Compass did not answer for the infected devices: {message}'
    )


def _results(page: Mapping[str, Any]) -> list[Any]:
    results = page.get('results')
    return results if isinstance(results, list) else []


def summarise(machines: Iterable[str], records: list[Mapping[str, Any]]) -> dict[str, Device]:
    """A Device per asked machine that records name, from those records only."""
    by_machine: dict[str, list[Mapping[str, Any]]] = {m: [] for m in machines}
    for record in records:
        machine = record.get('infected_machine_id')
        if isinstance(machine, str) and machine.strip() in by_machine:
            by_machine[machine.strip()].append(record)
    return {m: device(m, found) for m, found in by_machine.items() if found}


def device(machine: str, records: list[Mapping[str, Any]]) -> Device:
    """One machine's summary: its facts, and its applications, newest infection first."""
    apps: dict[str, tuple[int, datetime | None]] = {}
    for record in records:
        domain = application(record)
        if domain is None:
            continue
        count, newest = apps.get(domain, (0, None))
        infected = parse_time(record.get('infected_time'))
        if infected is not None and (newest is None or infected > newest):
            newest = infected
        apps[domain] = (count + 1, newest)
    ordered = sorted(
        apps.items(),
        key=lambda item: (item[1][1] is not None, item[1][1], item[1][0]),
        reverse=True,
    )
    return Device(
        machine_id=machine,
        hostnames=_facts(records, 'user_hostname', shown_hostname),
        ips=_facts(records, 'ip_addresses', shown_ip),
        macs=_facts(records, 'mac_address', _mac),
        os=next(iter(_facts(records, 'user_os', shown_text)), None),
        records=len(records),
        applications=tuple(Application(d, c, n) for d, (c, n) in ordered),
    )


def with_record(found: Device, record: Mapping[str, Any]) -> Device:
    """The device with the sighted record's own hostname, IPs, MAC and OS added (Compass's
    records may lack or mask them), each kept once and at most MAX_FACTS of each."""
    own = device(found.machine_id, [record])

    def both(mine: tuple[str, ...], theirs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(mine + theirs))[:MAX_FACTS]

    return Device(
        machine_id=found.machine_id,
        hostnames=both(found.hostnames, own.hostnames),
        ips=both(found.ips, own.ips),
        macs=both(found.macs, own.macs),
        os=found.os or own.os,
        records=found.records,
        applications=found.applications,
    )


def application(record: Mapping[str, Any]) -> str | None:
    """The site a credential was stolen for: its target domain, else the host of its URL
    (a URL's path and query can carry tokens: only the host is kept)."""
    for name in ('target_domain', 'target_subdomain'):
        value = shown_hostname(record.get(name))
        if value:
            return value.lower()
    url = record.get('target_url')
    if isinstance(url, str):
        try:
            host = urlsplit(url.strip() if '//' in url else '//' + url.strip()).hostname
        except ValueError:
            return None
        return shown_hostname(host)
    return None


def _facts(records: list[Mapping[str, Any]], name: str, check: Any) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for record in records:
        raw = record.get(name)
        for value in raw if isinstance(raw, list) else [raw]:
            good = check(value)
            if good and len(seen) < MAX_FACTS:
                seen.setdefault(good)
    return tuple(seen)


def shown_text(value: object) -> str | None:
    """A string SpyCloud sent, as a device fact may show it: none when masked (``*``)."""
    if not isinstance(value, str) or '*' in value:
        return None
    text = ' '.join(value.split())[:200]
    return text or None


def shown_hostname(value: object) -> str | None:
    """A hostname, or none: anything else is not shown as one."""
    text = shown_text(value)
    return text if text and HOSTNAME.match(text) else None


def shown_ip(value: object) -> str | None:
    """An IP address in its normal form, or none."""
    text = shown_text(value)
    try:
        return str(ipaddress.ip_address(text)) if text else None
    except ValueError:
        return None


def _mac(value: object) -> str | None:
    text = shown_text(value)
    return text.lower() if text and MAC.match(text) else None


def _pack(found: Device) -> dict[str, Any]:
    return {
        'machine_id': found.machine_id,
        'hostnames': list(found.hostnames),
        'ips': list(found.ips),
        'macs': list(found.macs),
        'os': found.os,
        'records': found.records,
        'applications': [
            [
                a.domain,
                a.credentials,
                a.newest_infection.isoformat() if a.newest_infection else None,
            ]
            for a in found.applications
        ],
    }


def _unpack(parts: dict[str, Any]) -> Device:
    return Device(
        machine_id=parts['machine_id'],
        hostnames=tuple(parts['hostnames']),
        ips=tuple(parts['ips']),
        macs=tuple(parts['macs']),
        os=parts['os'],
        records=parts['records'],
        applications=tuple(
            Application(d, c, datetime.fromisoformat(n) if n else None)
            for d, c, n in parts['applications']
        ),
    )


codec.register(Device, 'CompassDevice', _pack, _unpack)
