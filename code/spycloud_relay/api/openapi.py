"""GET /openapi.json: the relay's OpenAPI document (code/openapi.yaml), served as JSON.

The app factory registers this blueprint only when ``OPENAPI_ENABLED`` is true, so the route
is a plain 404 otherwise. The document is read once, when the blueprint is registered: a
missing or broken file stops the start-up instead of failing the first request.
"""

from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState

DOCUMENT = Path(__file__).resolve().parent.parent / 'openapi.yaml'
EXTENSION = 'spycloud_relay.openapi'

openapi_api = Blueprint('openapi', __name__)


class OpenApiDocumentError(RuntimeError):
    """The OpenAPI document cannot be read while OPENAPI_ENABLED asks for it."""


def load_document(path: str | Path = DOCUMENT) -> dict[str, Any]:
    """The parsed document, or OpenApiDocumentError naming what is wrong with the file."""
    try:
        with open(path, encoding='utf-8') as handle:
            document = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise OpenApiDocumentError(
            f'OPENAPI_ENABLED is true but {path} cannot be read: {error}'
        ) from None
    if not isinstance(document, dict) or 'openapi' not in document:
        raise OpenApiDocumentError(f'{path} is not an OpenAPI document')
    return document


@openapi_api.record_once
def _load(state: BlueprintSetupState) -> None:
    state.app.extensions[EXTENSION] = load_document()


@openapi_api.route('/openapi.json', methods=['GET'])
def openapi_document() -> Response:
    """Read once at registration, so serving it cannot fail on the file."""
    return jsonify(current_app.extensions[EXTENSION])
