from flask import Blueprint, jsonify

from config import VERSION

version_api = Blueprint('version', __name__)


@version_api.route('/version', methods=['POST', 'GET'])
def version():
    return jsonify({'version': VERSION})
