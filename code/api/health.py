from flask import Blueprint

from api.envelope import data_response
from api.services import services
from api.telemetry import note_lookup

health_api = Blueprint('health', __name__)


@health_api.route('/health', methods=['POST'])
def health():
    relay = services()
    module = relay.module_settings()
    deadline = relay.spycloud.new_deadline()
    note_lookup([], deadline.stats)
    relay.spycloud.check(module.api_key, deadline)
    return data_response({'status': 'ok'})
