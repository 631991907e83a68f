"""The observe answer, built once for the route and the CLI alike.

Each observable's result is an Exposure (mapped to CTIM, its warnings kept) or the
RelayError that stopped it; what the other observables found still reaches the analyst.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from ctim.bundle import Bundle
from ctim.mapping import MappingOptions, exposure_entities
from ctim.verdicts import exposure_verdicts, verdict
from errors import RelayError, envelope
from spycloud.lookup import VerdictRule


@dataclass
class Answer:
    data: dict
    warnings: list = field(default_factory=list)
    fatal: list = field(default_factory=list)

    @property
    def errors(self) -> list:
        """Fatal errors first, then the warnings, as the envelope lists them."""
        return [*self.fatal, *self.warnings]

    def body(self) -> dict:
        return envelope(self.data, self.errors)


def observe_answer(
    results: list, options: MappingOptions, warnings: Iterable = (), rule: VerdictRule | None = None
) -> Answer:
    """The bundle of every Exposure in ``results`` (sightings, indicators, relationships, and
    a judgement and verdict for each with evidence), their warnings, and the fatal errors."""

    def entities(exposure):
        yield from exposure_entities(exposure, options)
        if rule is not None:
            yield from exposure_verdicts(exposure, rule, options)

    return _answer(results, entities, warnings)


def deliberate_answer(results: list, rule: VerdictRule, warnings: Iterable = ()) -> Answer:
    """The verdicts of every Exposure in ``results`` that holds evidence."""

    def entities(exposure):
        if exposure.evidence is not None:
            yield [verdict(exposure.observable, exposure.evidence, rule)]

    return _answer(results, entities, warnings)


def _answer(results, entities, warnings):
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
