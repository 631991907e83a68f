"""POST /tiles, /tiles/tile and /tiles/tile-data: the exposure dashboard of the watchlist, and
the infected devices of SpyCloud Compass (a gathering of their own)."""

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, request

from spycloud_relay.api.envelope import data_response
from spycloud_relay.api.schemas import TILE_REQUEST, load_fields, read_json
from spycloud_relay.api.services import Services, services
from spycloud_relay.api.telemetry import note_lookup
from spycloud_relay.errors import InvalidArgumentError, RelayError
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.tiles import dashboard, devices
from spycloud_relay.tiles.aggregate import PERIODS

TILES = [*dashboard.TILES, *devices.TILES]
BY_ID = {tile['id']: tile for tile in TILES}

tiles_api = Blueprint('tiles', __name__)


@tiles_api.route('/tiles', methods=['POST'])
def tiles() -> Response:
    """The tiles this module offers."""
    services().module_settings()
    return data_response(TILES)


@tiles_api.route('/tiles/tile', methods=['POST'])
def tile() -> Response:
    relay = services()
    relay.module_settings()
    return data_response(BY_ID[_tile_id(_body(relay))])


@tiles_api.route('/tiles/tile-data', methods=['POST'])
def tile_data_route() -> Response:
    """One tile's data, from the period's aggregate (gathered once, then cached)."""
    relay = services()
    module = relay.module_settings()
    body = _body(relay)
    tile_id = _tile_id(body)
    period = body.get('period') or BY_ID[tile_id]['default_period']
    if period not in PERIODS:
        raise InvalidArgumentError(
            f'Unknown period {str(period)[:40]!r}: the tiles take {", ".join(PERIODS)}.'
        )
    lookup = relay.spycloud.lookup(module.api_key)
    note_lookup([], lookup.stats)
    doc, warnings = _tile_data(relay, lookup, tile_id, period)
    return data_response(doc, [*module.warnings, *warnings])


def _tile_data(
    relay: Services, lookup: Lookup, tile_id: str, period: str
) -> tuple[dict[str, Any], list[RelayError]]:
    """The tile's data and warnings, from its own gathering: Compass's devices or the
    watchlist's aggregate."""
    if tile_id in devices.BY_ID:
        found = relay.devices.gathered(lookup, period)
        doc = devices.tile_data(tile_id, found.infected, found.computed_at, relay.devices.ttl_s)
        return doc, list(found.infected.warnings)
    gathered = relay.dashboard.gathered(lookup, period)
    doc = dashboard.tile_data(
        tile_id,
        gathered.aggregate,
        gathered.catalogs,
        relay.settings.spycloud_ui_url,
        gathered.computed_at,
        relay.dashboard.ttl_s,
    )
    return doc, list(gathered.aggregate.warnings)


def _body(relay: Services) -> dict[str, str]:
    body = read_json(request, relay.settings.max_content_length)
    if not isinstance(body, dict):
        raise InvalidArgumentError(
            'The body must be a JSON object with a tile_id (and, for tile data, a period).'
        )
    return load_fields(TILE_REQUEST, body)


def _tile_id(body: Mapping[str, str]) -> str:
    tile_id = body.get('tile_id')
    if tile_id is None or not tile_id.strip():
        raise InvalidArgumentError(f'The body needs a tile_id: one of {", ".join(BY_ID)}.')
    if tile_id.strip() not in BY_ID:
        raise InvalidArgumentError(
            f'Unknown tile_id {tile_id[:60]!r}: the tiles are {", ".join(BY_ID)}.'
        )
    return tile_id.strip()
