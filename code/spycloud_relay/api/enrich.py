"""POST /observe/observables, /deliberate/observables and /refer/observables: verify, look
up, map, answer."""

from flask import Blueprint, Response, request

from spycloud_relay.api.envelope import answer_response, data_response, error_response
from spycloud_relay.api.schemas import parse_observables
from spycloud_relay.api.services import services
from spycloud_relay.api.telemetry import note_lookup
from spycloud_relay.ctim.answer import deliberate_answer, observe_answer
from spycloud_relay.ctim.refer import refer_answer
from spycloud_relay.spycloud.client import PAGE_ENDPOINTS, VERDICT_TYPES

enrich_api = Blueprint('enrich', __name__)


@enrich_api.route('/observe/observables', methods=['POST'])
def observe_observables() -> Response:
    relay = services()
    module = relay.module_settings()
    observables = parse_observables(request, supported_types=PAGE_ENDPOINTS)
    if not observables:
        return data_response({})
    rule = module.verdict_rule()
    lookup = relay.spycloud.lookup(module.api_key, module.entities_limit, module.query(), rule)
    note_lookup((o.type for o in observables), lookup.stats)
    results = relay.spycloud.exposures(lookup, observables)
    options = module.mapping_options(relay.settings.spycloud_ui_url)
    return answer_response(observe_answer(results, options, module.warnings, rule))


@enrich_api.route('/deliberate/observables', methods=['POST'])
def deliberate_observables() -> Response:
    """Quick verdicts: one filtered SpyCloud call per account (none when cached)."""
    relay = services()
    module = relay.module_settings()
    observables = parse_observables(request, supported_types=VERDICT_TYPES)
    rule = module.verdict_rule()
    if not observables or rule is None:
        return data_response({}, module.warnings)
    lookup = relay.spycloud.lookup(module.api_key, verdicts=rule)
    note_lookup((o.type for o in observables), lookup.stats)
    results = relay.spycloud.verdicts(lookup, observables)
    return answer_response(deliberate_answer(results, rule, module.warnings))


@enrich_api.route('/refer/observables', methods=['POST'])
def refer_observables() -> Response:
    """Links into SpyCloud's portal: no SpyCloud call when observe cached the records, else
    one for their first page (and the uncached sources, ten per call)."""
    relay = services()
    module = relay.module_settings()
    observables = parse_observables(request, supported_types=PAGE_ENDPOINTS)
    if not observables:
        return data_response([], module.warnings)
    lookup = relay.spycloud.lookup(module.api_key, module.entities_limit, module.query())
    note_lookup((o.type for o in observables), lookup.stats)
    results = relay.spycloud.exposing_sources(lookup, observables)
    refs, errors = refer_answer(observables, results, relay.settings.spycloud_ui_url)
    fatal = [error for error in errors if not error.is_warning]
    warnings = [*module.warnings, *(error for error in errors if error.is_warning)]
    if fatal:
        return error_response([*fatal, *warnings], data=refs)
    return data_response(refs, warnings)
