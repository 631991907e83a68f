"""The call pool: a call's concurrent SpyCloud lookups, on threads of that call's own.

One request's lookups never queue behind another's: each call that fans out (the observables
of a request, the catalog batches of a lookup, the days of a dashboard) opens a pool of its
own, at most SPYCLOUD_MAX_WORKERS threads, and a single task runs inline, starting no thread.
Every wait is bounded by the lookup's deadline, plus a margin for the tasks' wrap-up (each
task gives up at the deadline itself); what did not end in time is a ``deadline exceeded``
warning, and a defect spoils only its own item.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from traceback import format_tb
from typing import Any, TypeGuard, TypeVar

from spycloud_relay.deadline import DeadlineReached
from spycloud_relay.errors import InternalServerError, RelayError, RelayWarning
from spycloud_relay.spycloud import warnings
from spycloud_relay.spycloud.lookup import Lookup
from spycloud_relay.spycloud.models import Exposure, Observable

Item = TypeVar('Item')
Result = TypeVar('Result')

# The logger these lines were written to before the client was split: logs are read by it.
log = logging.getLogger(__name__)


def waited(futures: Iterable[Future[Any]], lookup: Lookup, margin: float) -> set[Future[Any]]:
    """The futures done by the lookup's deadline plus ``margin`` (their wrap-up after it)."""
    done, _ = wait(futures, timeout=lookup.deadline.remaining() + margin)
    return done


class CallPool:
    """Runs one call's tasks: inline when there is one (no thread to start), else on threads
    of its own, left to finish on their own (each bounded by the deadline) once waited for."""

    def __init__(self, workers: int, name: str) -> None:
        self._executor = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
            if workers > 1
            else None
        )

    def submit(self, function: Callable[..., Result], *args: Any) -> Future[Result]:
        if self._executor is not None:
            return self._executor.submit(function, *args)
        future: Future[Result] = Future()
        try:
            future.set_result(function(*args))
        except BaseException as error:  # noqa: B902 - handed to the caller, as an executor does
            future.set_exception(error)
        return future

    def __enter__(self) -> 'CallPool':
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


class Pools:
    """Where the client's calls get their pools: never more than ``max_workers`` threads."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers

    def open(self, tasks: int, name: str) -> CallPool:
        """A pool of this call's own: one request's lookups never queue behind another's."""
        return CallPool(min(tasks, self._max_workers), name)

    def each(
        self,
        lookup: Lookup,
        items: Sequence[Item],
        task: Callable[[Lookup, Item], Result],
        describe: Callable[[Item], str] = str,
    ) -> list[Result | RelayError]:
        """``task(lookup, item)`` for every item at once, on this call's own pool: its result,
        or the RelayError that stopped it (a ``deadline exceeded`` warning when it did not end
        in time; an ``internal error`` for a defect, which spoils only its own item)."""
        with self.open(len(items), 'lookup') as pool:
            futures = [pool.submit(task, lookup, item) for item in items]
            waited(futures, lookup, margin=1.0)
        settled: list[Result | RelayError] = []
        for item, future in zip(items, futures, strict=True):
            failure = _failure(lookup, describe(item), future)
            settled.append(future.result() if failure is None else failure)
        return settled

    def per_observable(
        self,
        lookup: Lookup,
        observables: Sequence[Observable],
        task: Callable[[Lookup, Observable], Exposure],
    ) -> list[Exposure | RelayError]:
        """``each`` over observables: one cut short is an Exposure holding that warning."""
        results = self.each(lookup, observables, task, describe=lambda o: o.value)
        return [
            Exposure.empty(o, r) if _cut_short(r) else r
            for o, r in zip(observables, results, strict=True)
        ]


def _cut_short(result: object) -> TypeGuard[RelayWarning]:
    """Whether a result is a plain RelayWarning (what ``each`` says of a task the deadline cut
    short): a warning beside the observable, not a failure of it."""
    return isinstance(result, RelayWarning) and result.__class__ is RelayWarning


def _failure(lookup: Lookup, what: str, future: Future[Any]) -> RelayError | None:
    """What stands for a task that did not end well: the warning that the deadline cut it
    short, its own RelayError, or an ``internal error`` for a defect (logged); else None."""
    if not future.done() or isinstance(future.exception(), DeadlineReached):
        return warnings.cut_short(lookup.deadline, f'the lookup of {what}')
    error = future.exception()
    if isinstance(error, RelayError):
        return error
    if error is not None:
        log.error(
            'lookup failed unexpectedly (%s)',
            type(error).__name__,
            extra={'traceback': ''.join(format_tb(error.__traceback__))},
        )
        return InternalServerError(f'The lookup of {what} failed unexpectedly.')
    return None
