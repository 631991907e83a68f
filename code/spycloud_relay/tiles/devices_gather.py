"""Gathering the infected-devices tiles' picture: Compass's device list of the period.

A gathering of its own, apart from the watchlist's (tiles/gather.py): neither waits for the
other. The period's devices are one ``compass/devices`` query, paged (spycloud/
compass_devices.py), within the lookup's deadline, the rate limiter and the client's
transport. The picture is cached per API key and period as the dashboard's aggregate
(TILE_CACHE_TTL_S), under a lease of its own key (tiles/single.py): the two tiles of a
period asked at once cost one gathering. A key without Compass (403) is a picture that says
so, cached as long, and so is one cut at the page bound; a picture some pages of which did
not arrive is shown, not kept; a period of which nothing arrived is the error that stopped it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spycloud_relay import state
from spycloud_relay.config import Settings
from spycloud_relay.deadline import DeadlineReached
from spycloud_relay.errors import InvalidArgumentError, RelayError
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.client import SpyCloudClient
from spycloud_relay.spycloud.compass_devices import TOO_MANY
from spycloud_relay.spycloud.failures import BadRequest, Refused
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.state import MISSING
from spycloud_relay.tiles.aggregate import Period, utc_now
from spycloud_relay.tiles.devices import UNLICENSED, Infected, from_json, to_json
from spycloud_relay.tiles.single import OneAtATime


@dataclass(frozen=True)
class GatheredDevices:
    infected: Infected
    computed_at: datetime


class DeviceTiles:
    """Infected-devices pictures per key and period, gathered once and kept a while."""

    def __init__(self, client: SpyCloudClient, settings: Settings) -> None:
        self._client = client
        self.ttl_s = settings.tile_cache_ttl_s
        self._cache = state.cache(
            settings, 'device-tiles', settings.tile_cache_size, settings.tile_cache_ttl_s
        )
        self._single = OneAtATime(settings, _packed, _unpacked)

    def gathered(self, lookup: Lookup, period_name: str) -> GatheredDevices:
        """The period's picture; raises the RelayError of a SpyCloud that refused the key
        (other than Compass's 403) or answered no page."""
        key = ('devices', lookup.fingerprint, period_name)
        return self._single.run(
            lookup,
            key,
            lambda: self._cached(lookup, key),
            lambda: self._gathered_now(lookup, key, period_name),
        )

    def _cached(self, lookup: Lookup, key: tuple[str, ...]) -> GatheredDevices | None:
        cached = self._cache.get(key, secret=lookup.api_key)
        if cached is MISSING:
            return None
        lookup.stats.add(cache_hits=1)
        return _unpacked(cached)

    def _gathered_now(
        self, lookup: Lookup, key: tuple[str, ...], period_name: str
    ) -> GatheredDevices:
        now = utc_now()
        period = Period.ending(period_name, now)
        infected = self._infected(lookup, period)
        gathered = GatheredDevices(infected, now)
        if _keepable(infected):
            self._cache.set(key, _packed(gathered), secret=lookup.api_key)
        return gathered

    def _infected(self, lookup: Lookup, period: Period) -> Infected:
        try:
            listed = self._client.compass_devices(lookup, period.start.date(), period.end.date())
        except Refused:
            return Infected(period, licensed=False, warnings=[UNLICENSED])
        except BadRequest as error:
            raise InvalidArgumentError(
                f'SpyCloud Compass refused the infected devices of the period: {error}'
            ) from None
        except DeadlineReached:
            raise _nothing_in_time(lookup) from None
        infected = Infected.of(period, listed.devices)
        if listed.stopped is not None:
            infected.warnings.append(listed.stopped)
        return infected


def _keepable(infected: Infected) -> bool:
    """A whole picture, a key without Compass, or one cut at the page bound (a reload would
    ask the same pages and stop at the same bound) is kept; a picture some page of which
    failed or came too late is not: the next asking may get it whole."""
    if not infected.licensed:
        return True
    return all(warning.code == TOO_MANY.code for warning in infected.warnings)


def _nothing_in_time(lookup: Lookup) -> RelayError:
    """No page within the deadline: no count can be shown (zero would read as no device)."""
    error = RelayError(warnings.cut_short(lookup.deadline, 'the infected devices').message)
    error.code = 'deadline exceeded'
    return error


def _packed(gathered: GatheredDevices) -> dict[str, Any]:
    return {'infected': to_json(gathered.infected), 'at': gathered.computed_at.isoformat()}


def _unpacked(packed: Mapping[str, Any]) -> GatheredDevices:
    return GatheredDevices(from_json(packed['infected']), datetime.fromisoformat(packed['at']))
