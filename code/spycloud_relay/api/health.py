"""POST /health: the token verifies and SpyCloud accepts its API key, with one call."""

from flask import Blueprint, Response

from spycloud_relay.api.envelope import data_response
from spycloud_relay.api.services import services
from spycloud_relay.api.telemetry import note_lookup

health_api = Blueprint('health', __name__)


@health_api.route('/health', methods=['POST'])
def health() -> Response:
    """XDR's module check: it fails where a lookup would, so the analyst sees why early."""
    relay = services()
    module = relay.module_settings()
    lookup = relay.spycloud.lookup(module.api_key)
    note_lookup([], lookup.stats)
    relay.spycloud.check(lookup)
    return data_response({'status': 'ok'})
