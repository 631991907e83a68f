"""POST /observe/observables: verify, look up, map, bundle."""
from flask import Blueprint, request

from api.envelope import data_response, error_response
from api.errors import RelayError
from api.schemas import parse_observables
from api.services import services
from api.telemetry import note_lookup
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
    bundle, warnings, fatal = Bundle(), list(module.warnings), []
    deadline = relay.spycloud.new_deadline()
    note_lookup(observables, deadline.stats)
    results = relay.spycloud.exposures(module.api_key, observables, module.entities_limit,
                                       deadline=deadline, query=module.query())
    for result in results:
        if isinstance(result, RelayError):
            fatal.append(result)
            continue
        for docs in exposure_entities(result, options):
            bundle.extend(docs)
        warnings.extend(result.warnings)
    if fatal:
        # What the other observables found still reaches the analyst.
        return error_response([*fatal, *warnings], data=bundle.data())
    return data_response(bundle.data(), warnings)
