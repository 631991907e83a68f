"""POST or GET /version: the relay's version, unwrapped, as XDR asks."""

from flask import Blueprint, Response, jsonify

from spycloud_relay.config import VERSION

version_api = Blueprint('version', __name__)


@version_api.route('/version', methods=['POST', 'GET'])
def version() -> Response:
    """Not in the envelope: XDR reads ``{"version": ...}`` as it is."""
    return jsonify({'version': VERSION})
