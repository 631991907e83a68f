"""The process-wide collaborators a route needs, created once by the app factory."""
from dataclasses import dataclass

from flask import current_app, request

from api.auth import TokenVerifier
from config import Settings
from spycloud.client import SpyCloudClient

EXTENSION = 'spycloud_relay'


@dataclass
class Services:
    settings: Settings
    verifier: TokenVerifier
    spycloud: SpyCloudClient

    def module_settings(self):
        """Verify the request's token; the answer belongs to this request only."""
        return self.verifier.module_settings(request.headers.get('Authorization'),
                                             request.url_root)


def services() -> Services:
    return current_app.extensions[EXTENSION]
