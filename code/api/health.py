from flask import Blueprint

from api.envelope import data_response
from api.services import services

health_api = Blueprint('health', __name__)


@health_api.route('/health', methods=['POST'])
def health():
    relay = services()
    module = relay.module_settings()
    relay.spycloud.check(module.api_key)
    return data_response({'status': 'ok'})
