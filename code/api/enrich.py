"""POST /observe/observables: verify, look up, map, bundle."""
from flask import Blueprint, request

from api.envelope import data_response, error_response
from api.errors import RelayError
from api.schemas import parse_observables
from api.services import services
from ctim.bundle import Bundle
from ctim.mapping import MappingOptions, exposure_entities
from spycloud.client import PAGE_ENDPOINTS

enrich_api = Blueprint('enrich', __name__)


@enrich_api.route('/observe/observables', methods=['POST'])
def observe_observables():
    relay = services()
    module = relay.module_settings()
    observables = parse_observables(request, supported_types=PAGE_ENDPOINTS)
    if not observables:
        return data_response({})

    options = MappingOptions(show_passwords=module.show_passwords,
                             ui_url=relay.settings.spycloud_ui_url)
    bundle, warnings = Bundle(), []
    for observable in observables:
        try:
            exposure = relay.spycloud.exposure(module.api_key, observable,
                                               module.entities_limit)
        except RelayError as error:
            # What the earlier observables found still reaches the analyst.
            return error_response([error, *warnings], data=bundle.data())
        for docs in exposure_entities(exposure, options):
            bundle.extend(docs)
        warnings.extend(exposure.warnings)
    return data_response(bundle.data(), warnings)
