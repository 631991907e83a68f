"""GET /watchdog: liveness, for XDR and the image's HEALTHCHECK; no token, no SpyCloud."""

from flask import Blueprint, Response, request

from spycloud_relay.api.envelope import data_response
from spycloud_relay.errors import WatchdogError

watchdog_api = Blueprint('watchdog', __name__)


@watchdog_api.route('/watchdog', methods=['GET'])
def watchdog() -> Response:
    """Echoes the Health-Check header, so the prober knows the answer is to its question."""
    value = request.headers.get('Health-Check')
    if value is None:
        raise WatchdogError()
    return data_response(value)
