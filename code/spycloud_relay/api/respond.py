"""POST /respond/observables and /respond/trigger: watchlist actions from XDR.

The offer asks SpyCloud whether each observable is on the watchlist (at once, within the
deadline and the rate limiter); the trigger checks everything it was given before it sends a
single write, and logs one line per action with the identifier masked.
"""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Blueprint, Response, request

from spycloud_relay.api.envelope import data_response, error_response
from spycloud_relay.api.module_settings import ModuleSettings
from spycloud_relay.api.schemas import TRIGGER, load_fields, parse_observables, read_json
from spycloud_relay.api.services import services
from spycloud_relay.api.telemetry import note_lookup
from spycloud_relay.ctim.actions import ADD, REMOVE, TAKES, VERIFY, Target, masked, offers
from spycloud_relay.deadline import DeadlineReached
from spycloud_relay.errors import InvalidArgumentError, RelayError, RelayWarning, UnknownError
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import Observable
from spycloud_relay.spycloud.watchlist import (
    TYPES_BY_OBSERVABLE,
    Watchlist,
    identifier,
    watchlist_type,
)

respond_api = Blueprint('respond', __name__)
log = logging.getLogger('relay.respond')  # a documented name (README), not __name__
FIELDS = ('observable_type', 'observable_value', 'watchlist_type')


@respond_api.route('/respond/observables', methods=['POST'])
def respond_observables() -> Response:
    """The actions each observable can take now, by its state on the watchlist."""
    relay = services()
    module = relay.module_settings()
    observables = parse_observables(request, supported_types=TYPES_BY_OBSERVABLE)
    if not module.watchlist_actions or not observables:
        return data_response([], module.warnings)
    targets, warnings = _targets(observables)
    lookup = relay.spycloud.lookup(module.api_key)
    note_lookup((o.type for o in observables), lookup.stats)
    items = relay.spycloud.each(
        lookup,
        targets,
        lambda lookup, target: relay.spycloud.watchlist.item(lookup, target.value),
        describe=_value,
    )
    actions: list[dict[str, Any]] = []
    fatal: list[RelayError] = []
    for target, item in zip(targets, items, strict=True):
        if isinstance(item, RelayError):
            (warnings if item.is_warning else fatal).append(item)
        else:
            actions.extend(offers(target, item, removal=module.watchlist_removal))
    if fatal:
        return error_response([*fatal, *module.warnings, *warnings], data=actions)
    return data_response(actions, [*module.warnings, *warnings])


@respond_api.route('/respond/trigger', methods=['POST'])
def respond_trigger() -> Response:
    """Perform one action; adding what is there, or removing what is gone, is success."""
    relay = services()
    action_id = 'unknown'
    target: Target | None = None
    try:
        module = relay.module_settings()
        action_id, target = _trigger(
            read_json(request, relay.settings.max_content_length),
            relay.settings.max_value_length,
            module,
        )
        lookup = relay.spycloud.lookup(module.api_key)
        note_lookup([target.observable_type], lookup.stats)
        outcome = _perform(relay.spycloud.watchlist, lookup, action_id, target)
    except RelayError as error:
        _log(action_id, target, 'failure', error.code)
        return error_response([error], data={'status': 'failure'})
    _log(action_id, target, 'success', outcome)
    return data_response({'status': 'success'})


def _targets(observables: Iterable[Observable]) -> tuple[list[Target], list[RelayError]]:
    targets: list[Target] = []
    warnings: list[RelayError] = []
    for observable in observables:
        kind = watchlist_type(observable.type, observable.value)
        if kind is None:
            warnings.append(
                RelayWarning(
                    'invalid argument',
                    f'{observable.value!r} is not a {observable.type} '
                    'the SpyCloud watchlist takes; no action is offered for it.',
                )
            )
        else:
            targets.append(Target(observable.type, identifier(observable.value), kind))
    return targets, warnings


def _trigger(payload: object, max_length: int, module: ModuleSettings) -> tuple[str, Target]:
    """(action id, Target) from the trigger's JSON object, or ``invalid argument``."""
    if not isinstance(payload, dict):
        raise InvalidArgumentError(
            'The trigger must be a JSON object with action-id, '
            'observable_type, observable_value and watchlist_type.'
        )
    values = load_fields(TRIGGER, payload)
    action_id = values.get('action_id')
    if action_id is None or action_id not in TAKES:
        raise InvalidArgumentError(
            f'Unknown action-id {str(action_id)[:60]!r}: this module offers {", ".join(TAKES)}.'
        )
    target = _target(action_id, _fields(action_id, values), max_length)
    _allowed(action_id, module)
    return action_id, target


def _fields(action_id: str, values: Mapping[str, str]) -> dict[str, str]:
    missing = [name for name in FIELDS if not values.get(name, '').strip()]
    if missing:
        raise InvalidArgumentError(f'The trigger of {action_id} needs {", ".join(missing)}.')
    # The value as sent: white space or a line break around it makes it no identifier.
    return {
        name: values[name] if name == 'observable_value' else values[name].strip()
        for name in FIELDS
    }


def _target(action_id: str, values: Mapping[str, str], max_length: int) -> Target:
    """The Target the fields name, when the action takes it and the fields agree."""
    kind, value = values['observable_type'].lower(), values['observable_value']
    if kind not in TAKES[action_id]:
        raise InvalidArgumentError(
            f'{action_id} takes {" or ".join(TAKES[action_id])} observables, not {kind[:40]!r}.'
        )
    if len(value) > max_length:
        raise InvalidArgumentError(
            f'The observable_value has {len(value)} characters; the '
            f'limit is {max_length} (MAX_VALUE_LENGTH).'
        )
    expected = watchlist_type(kind, value)
    if expected is None or values['watchlist_type'].lower() != expected:
        raise InvalidArgumentError(
            f'The watchlist_type {values["watchlist_type"][:20]!r} does not match the {kind} '
            f'{value!r}' + (f' (a {expected}).' if expected else '.')
        )
    return Target(kind, identifier(value), expected)


def _allowed(action_id: str, module: ModuleSettings) -> None:
    if action_id == REMOVE and not module.watchlist_removal:
        raise InvalidArgumentError(
            'Removal from the SpyCloud watchlist is turned off for this '
            'module (custom_watchlist_removal).'
        )
    if action_id in (ADD, VERIFY) and not module.watchlist_actions:
        raise InvalidArgumentError(
            'Watchlist actions are turned off for this module (custom_watchlist_actions).'
        )


def _perform(watchlist: Watchlist, lookup: Lookup, action_id: str, target: Target) -> str:
    try:
        if action_id == ADD:
            return watchlist.add(lookup, target.value, target.watchlist_type)
        if action_id == REMOVE:
            return watchlist.remove(lookup, target.value)
        return watchlist.verify(lookup, target.value)
    except DeadlineReached:
        raise UnknownError(
            f'SpyCloud did not answer within {lookup.deadline.seconds:g} s; the '
            'action may or may not have been done: check the watchlist before '
            'trying again.'
        ) from None


def _log(action_id: str, target: Target | None, outcome: str, detail: str) -> None:
    log.info(
        'watchlist action',
        extra={
            'action': action_id,
            'observable_type': target.observable_type if target else None,
            'identifier': masked(target.value) if target else None,
            'outcome': outcome,
            'detail': detail,
        },
    )


def _value(target: Target) -> str:
    return target.value
