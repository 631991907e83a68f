"""The process-wide collaborators a route needs, created once by the app factory."""

from dataclasses import dataclass

from flask import Flask, current_app, request

from spycloud_relay.api.auth import TokenVerifier
from spycloud_relay.api.module_settings import ModuleSettings
from spycloud_relay.config import Settings
from spycloud_relay.spycloud.client import SpyCloudClient
from spycloud_relay.tiles.devices_gather import DeviceTiles
from spycloud_relay.tiles.gather import Dashboard

EXTENSION = 'spycloud_relay'


@dataclass
class Services:
    settings: Settings
    verifier: TokenVerifier
    spycloud: SpyCloudClient
    dashboard: Dashboard
    devices: DeviceTiles

    @classmethod
    def create(
        cls,
        settings: Settings,
        spycloud: SpyCloudClient | None = None,
        verifier: TokenVerifier | None = None,
    ) -> 'Services':
        """The real collaborators, unless a test hands in its own."""
        spycloud = spycloud or SpyCloudClient(settings)
        return cls(
            settings=settings,
            verifier=verifier or TokenVerifier(settings),
            spycloud=spycloud,
            dashboard=Dashboard(spycloud, settings),
            devices=DeviceTiles(spycloud, settings),
        )

    def init_app(self, app: Flask) -> None:
        """One set per app: routes find it through ``services()``, never through globals."""
        app.extensions[EXTENSION] = self

    def module_settings(self) -> ModuleSettings:
        """Verify the request's token; the answer belongs to this request only."""
        return self.verifier.module_settings(request.headers.get('Authorization'), request.url_root)


def services() -> Services:
    """The app's collaborators, for the route handling the current request."""
    found: Services = current_app.extensions[EXTENSION]  # set by init_app; Flask's dict says Any
    return found
