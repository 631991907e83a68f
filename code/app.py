"""The WSGI application: ``app:app`` for gunicorn, ``create_app()`` for tests."""
import logging
import re
import time
import traceback
import uuid

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from api.auth import TokenVerifier
from api.enrich import enrich_api
from api.envelope import error_response
from api.errors import InternalServerError, InvalidArgumentError, RelayError, RouteError
from api.health import health_api
from api.openapi import openapi_api
from api.telemetry import metrics_api, request_finished
from api.services import EXTENSION, Services
from api.version import version_api
from api.watchdog import watchdog_api
from config import Settings
from logs import configure_logging
from spycloud.client import SpyCloudClient

log = logging.getLogger('relay')
REQUEST_ID = re.compile(r'^[A-Za-z0-9._-]{1,64}$')


def create_app(settings=None, spycloud=None, verifier=None):
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    if not settings.jwt_audience:
        log.warning('JWT_AUDIENCE is not set: the expected token audience is taken from each '
                    'request\'s Host and X-Forwarded-Proto, which the caller chooses. Set it to '
                    'the URL XDR calls in production.')

    app = Flask(__name__)
    # OPTIONS is answered like any other method a route does not take: 405 in the envelope.
    app.config['PROVIDE_AUTOMATIC_OPTIONS'] = False
    app.url_map.strict_slashes = False
    app.json.sort_keys = False
    app.extensions[EXTENSION] = Services(
        settings=settings,
        verifier=verifier or TokenVerifier(settings),
        spycloud=spycloud or SpyCloudClient(settings),
    )
    for blueprint in (health_api, enrich_api, version_api, watchdog_api):
        app.register_blueprint(blueprint)
    if settings.openapi_enabled:
        app.register_blueprint(openapi_api)
    if settings.metrics_enabled:
        app.register_blueprint(metrics_api)
    # Bodies over the limit are refused as they are read (413, answered below in the envelope).
    app.config['MAX_CONTENT_LENGTH'] = settings.max_content_length

    @app.before_request
    def assign_request_id():
        offered = request.headers.get('X-Request-Id', '')
        g.request_id = offered if REQUEST_ID.match(offered) else uuid.uuid4().hex[:16]
        g.started = time.perf_counter()

    @app.after_request
    def echo_request_id(response):
        response.headers['X-Request-Id'] = g.get('request_id', '')
        request_finished(response)
        return response

    @app.errorhandler(RelayError)
    def relay_error(error):
        log.info('answered %s: %s', error.code, error.message)
        return error_response([error])

    @app.errorhandler(RequestEntityTooLarge)
    def body_too_large(error):
        return error_response([InvalidArgumentError(
            f'Request body too large: the limit is {settings.max_content_length} bytes '
            '(MAX_CONTENT_LENGTH).')])

    @app.errorhandler(MethodNotAllowed)
    def method_not_allowed(error):
        response = error_response([RouteError('method not allowed', error.description)],
                                  status=405)
        response.headers['Allow'] = ', '.join(sorted(error.valid_methods or ()))
        return response

    @app.errorhandler(HTTPException)
    def http_error(error):
        if error.code in (404, 405):
            return error_response([RouteError(error.name.lower(), error.description)],
                                  status=error.code)
        return error_response([InvalidArgumentError(f'{error.name}: {error.description}')])

    @app.errorhandler(Exception)
    def unexpected_error(error):
        # Where it failed, not what it said: a library's message can quote a header or a key.
        log.error('unexpected error (%s)', type(error).__name__,
                  extra={'traceback': ''.join(traceback.format_tb(error.__traceback__))})
        return error_response([InternalServerError(
            f'The relay failed unexpectedly; quote request id {g.get("request_id", "-")} '
            'to its operator.')])

    return app


def __getattr__(name):
    """Build ``app`` on first access, so importing this module for tests has no side effects."""
    if name == 'app':
        globals()['app'] = create_app()
        return globals()['app']
    raise AttributeError(name)
