"""The observe answer, built once for the route and the CLI alike.

Each observable's result is an Exposure (mapped to CTIM, its warnings kept) or the
RelayError that stopped it; what the other observables found still reaches the analyst.
"""
from dataclasses import dataclass, field

from ctim.bundle import Bundle
from ctim.mapping import MappingOptions, exposure_entities
from errors import RelayError, envelope


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


def observe_answer(results: list, options: MappingOptions, warnings=()) -> Answer:
    """The bundle of every Exposure in ``results``, their warnings, and the fatal errors."""
    bundle, answer = Bundle(), Answer(data={}, warnings=list(warnings))
    for result in results:
        if isinstance(result, RelayError):
            answer.fatal.append(result)
            continue
        for docs in exposure_entities(result, options):
            bundle.extend(docs)
        answer.warnings.extend(result.warnings)
    answer.data = bundle.data()
    return answer
