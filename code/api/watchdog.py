from flask import Blueprint, request

from api.envelope import data_response
from api.errors import WatchdogError

watchdog_api = Blueprint('watchdog', __name__)


@watchdog_api.route('/watchdog', methods=['GET'])
def watchdog():
    value = request.headers.get('Health-Check')
    if value is None:
        raise WatchdogError()
    return data_response(value)
