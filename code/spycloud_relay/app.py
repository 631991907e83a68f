"""The application factory: ``gunicorn 'spycloud_relay.app:create_app()'``, and
``create_app(settings)`` in tests.

The factory wires the parts and nothing more: each part registers itself (``init_app``).
"""

import logging

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from spycloud_relay.api import handlers, request_ids, telemetry
from spycloud_relay.api.auth import TokenVerifier
from spycloud_relay.api.enrich import enrich_api
from spycloud_relay.api.health import health_api
from spycloud_relay.api.openapi import openapi_api
from spycloud_relay.api.respond import respond_api
from spycloud_relay.api.services import Services
from spycloud_relay.api.tiles import tiles_api
from spycloud_relay.api.version import version_api
from spycloud_relay.api.watchdog import watchdog_api
from spycloud_relay.config import Settings
from spycloud_relay.logs import configure_logging, logging_configured
from spycloud_relay.spycloud.client import SpyCloudClient

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    spycloud: SpyCloudClient | None = None,
    verifier: TokenVerifier | None = None,
) -> Flask:
    """The relay's WSGI app; ``spycloud`` and ``verifier`` replace the real ones in tests."""
    settings = settings or Settings.from_env()
    if not logging_configured():  # a process that set logging up at its start keeps its own
        configure_logging(settings.log_level)
    warn_if_audience_unset(settings)
    app = Flask(__name__)
    configure(app, settings)
    Services.create(settings, spycloud=spycloud, verifier=verifier).init_app(app)
    register_blueprints(app, settings)
    request_ids.init_app(app)
    telemetry.init_app(app)
    handlers.init_app(app)
    trust_proxies(app, settings.trusted_proxies)
    return app


def trust_proxies(app: Flask, count: int) -> None:
    """Believe X-Forwarded-For/-Proto/-Host/-Port/-Prefix as set by the ``count`` proxies
    nearest the relay (the last ``count`` values of each), and none at all when 0: the URL a
    token's audience is checked against is otherwise the caller's to choose."""
    if count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count, x_prefix=count
        )


def warn_if_audience_unset(settings: Settings) -> None:
    """Without JWT_AUDIENCE, whoever calls the relay chooses the audience it checks."""
    if not settings.jwt_audience:
        log.warning(
            'JWT_AUDIENCE is not set: the expected token audience is the URL each request '
            'names (its Host header, and the X-Forwarded-* headers of TRUSTED_PROXIES '
            'proxies), which the caller chooses. Set it to the URL XDR calls in production.'
        )


def configure(app: Flask, settings: Settings) -> None:
    """Flask's settings; set before any route is registered, which reads some of them."""
    # OPTIONS is answered like any other method a route does not take: 405 in the envelope.
    app.config['PROVIDE_AUTOMATIC_OPTIONS'] = False
    # Bodies over the limit are refused as they are read (413, answered in the envelope).
    app.config['MAX_CONTENT_LENGTH'] = settings.max_content_length
    app.url_map.strict_slashes = False
    assert isinstance(app.json, DefaultJSONProvider)  # Flask's own provider: no other is set
    app.json.sort_keys = False


def register_blueprints(app: Flask, settings: Settings) -> None:
    """The routes XDR calls, and the optional OpenAPI document and metrics."""
    for blueprint in (health_api, enrich_api, respond_api, tiles_api, version_api, watchdog_api):
        app.register_blueprint(blueprint)
    if settings.openapi_enabled:
        app.register_blueprint(openapi_api)
    if settings.metrics_enabled:
        app.register_blueprint(telemetry.metrics_api)
