"""Helpers the tests share: the contract validator and a relay served over real HTTP."""
import json
import threading
from pathlib import Path

import jsonschema
import requests
from werkzeug.serving import make_server

CONTRACT = Path(__file__).resolve().parent / 'contracts' / 'iroh-enrich-definitions.json'
_DEFINITIONS = json.loads(CONTRACT.read_text())['definitions']


def _validator(name):
    schema = {'definitions': _DEFINITIONS, '$ref': f'#/definitions/{name}'}
    checker = jsonschema.Draft4Validator.FORMAT_CHECKER
    return jsonschema.Draft4Validator(schema, format_checker=checker)


BUNDLE = _validator('ModuleObserveBundle')
ERROR = _validator('ModuleErrorMessage')
HEALTH = _validator('ModuleHealthStatus')


def assert_valid_answer(body):
    """An observe answer: data per ModuleObserveBundle, errors per ModuleErrorMessage."""
    assert set(body) <= {'data', 'errors'}, body.keys()
    if 'data' in body:
        BUNDLE.validate(body['data'])
    for error in body.get('errors', []):
        ERROR.validate(error)
    return body


def docs(body, plural):
    return body.get('data', {}).get(plural, {}).get('docs', [])


class RelayServer:
    """The Flask app on a loopback port, served by werkzeug's threaded server."""

    def __init__(self, app, issuer):
        self.app = app
        self.issuer = issuer
        self._server = make_server('127.0.0.1', 0, app, threaded=True)
        self.url = f'http://127.0.0.1:{self._server.server_port}'
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self.app.extensions['spycloud_relay'].spycloud.close()

    def token(self, **claims):
        claims.setdefault('aud', self.url)
        return self.issuer.mint(**claims)

    def post(self, path, body=None, *, token=None, headers=None, data=None, **claims):
        """POST with a fresh valid token unless ``token`` (or an Authorization header) is given."""
        headers = dict(headers or {})
        if 'Authorization' not in headers:
            headers['Authorization'] = f'Bearer {token or self.token(**claims)}'
        if data is None and body is not None:
            data = json.dumps(body)
        return requests.post(self.url + path, data=data, headers=headers, timeout=30)

    def observe(self, observables, **kwargs):
        response = self.post('/observe/observables', observables, **kwargs)
        assert response.status_code == 200, response.text
        return assert_valid_answer(response.json())

    def health(self, **kwargs):
        response = self.post('/health', **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


def email(value):
    return {'type': 'email', 'value': value}
