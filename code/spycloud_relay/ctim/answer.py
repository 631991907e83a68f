"""The observe answer, built once for the route and the CLI alike.

Each observable's result is an Exposure (mapped to CTIM, its warnings kept) or the
RelayError that stopped it; what the other observables found still reaches the analyst.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from spycloud_relay.ctim.bundle import Bundle
from spycloud_relay.ctim.mapping import MappingOptions, exposure_entities
from spycloud_relay.ctim.verdicts import exposure_verdicts, verdict
from spycloud_relay.errors import RelayError, RelayWarning, envelope
from spycloud_relay.spycloud.lookup import VerdictRule
from spycloud_relay.spycloud.models import Exposure

# What each observable ends in: its Exposure, or the RelayError that stopped it.
Result = Exposure | RelayError
# The CTIM documents of one Exposure, in lists (sightings, indicators, ...).
Entities = Callable[[Exposure], Iterable[list[dict[str, Any]]]]


@dataclass
class Answer:
    data: dict[str, Any]
    warnings: list[RelayWarning] = field(default_factory=list)
    fatal: list[RelayError] = field(default_factory=list)

    @property
    def errors(self) -> list[RelayError]:
        """Fatal errors first, then the warnings, as the envelope lists them."""
        return [*self.fatal, *self.warnings]

    def body(self) -> dict[str, Any]:
        return envelope(self.data, self.errors)


def observe_answer(
    results: Iterable[Result],
    options: MappingOptions,
    warnings: Iterable[RelayWarning] = (),
    rule: VerdictRule | None = None,
) -> Answer:
    """The bundle of every Exposure in ``results`` (sightings, indicators, relationships, and
    a judgement and verdict for each with evidence), their warnings, and the fatal errors."""

    def entities(exposure: Exposure) -> Iterator[list[dict[str, Any]]]:
        yield from exposure_entities(exposure, options)
        if rule is not None:
            yield from exposure_verdicts(exposure, rule, options)

    return _answer(results, entities, warnings)


def deliberate_answer(
    results: Iterable[Result], rule: VerdictRule, warnings: Iterable[RelayWarning] = ()
) -> Answer:
    """The verdicts of every Exposure in ``results`` that holds evidence."""

    def entities(exposure: Exposure) -> Iterator[list[dict[str, Any]]]:
        if exposure.evidence is not None:
            yield [verdict(exposure.observable, exposure.evidence, rule)]

    return _answer(results, entities, warnings)


def _answer(
    results: Iterable[Result], entities: Entities, warnings: Iterable[RelayWarning]
) -> Answer:
    bundle, answer = Bundle(), Answer(data={}, warnings=list(warnings))
    for result in results:
        if isinstance(result, RelayError):
            answer.fatal.append(result)
            continue
        for docs in entities(result):
            bundle.extend(docs)
        answer.warnings.extend(result.warnings)
    answer.data = bundle.data()
    return answer
