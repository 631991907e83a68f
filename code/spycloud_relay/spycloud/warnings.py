"""What the client says beside partial results: each warning names the observable and why."""

from spycloud_relay.deadline import Deadline
from spycloud_relay.errors import RelayError, RelayWarning
from spycloud_relay.spycloud.models import Observable


def more_records(observable: Observable, shown: int, hits: int) -> RelayWarning:
    return RelayWarning(
        'too many records',
        f'Showing the newest {shown} of {hits} SpyCloud records for {observable.value}. '
        "Raise the module's Entities Limit (up to 1000) to see more, or open the "
        'SpyCloud portal for the full list.',
    )


def refused(observable: Observable, error: RelayError) -> RelayWarning:
    return RelayWarning(
        'permission denied',
        f'SpyCloud refused to look up {observable.value} with this API key '
        f'({error.message.removeprefix("Authorization failed: ")}). It searches only the '
        "identifiers on the verified watchlist of the key's account.",
    )


def not_a_value(observable: Observable) -> RelayWarning:
    return RelayWarning(
        'invalid argument',
        f'{observable.value!r} is not a {observable.type} SpyCloud can look up: it would '
        'be read as a path step, not a value.',
    )


def page_failed(observable: Observable, pages: int, kept: int, error: RelayError) -> RelayWarning:
    return RelayWarning(
        error.code,
        f'SpyCloud failed on page {pages + 1} of the records of {observable.value} '
        f'({error.message}); the {kept} record(s) of the first {pages} page(s) are shown.',
    )


def cursor_expired(observable: Observable, pages: int) -> RelayWarning:
    return RelayWarning(
        'incomplete',
        f"SpyCloud's paging cursor for {observable.value} expired after "
        f'{pages} page(s); the records fetched so far are shown.',
    )


def paging_round(what: str, pages: int) -> RelayWarning:
    """Paging that brought nothing new and went on (``what``: the records of an observable, or
    of a day of the watchlist): stopped, what it read is kept, it is not whole."""
    return RelayWarning(
        'incomplete',
        f"SpyCloud's paging of {what} brought no new record in its last pages and went on; it "
        f'was stopped after {pages} page(s) and the records read are kept.',
    )


def filter_refused(observable: Observable, name: str, message: str) -> RelayWarning:
    # Not "no data": the module's filter was refused, so nothing was searched.
    return RelayWarning(
        'invalid argument',
        f'SpyCloud refused the {name} filter for {observable.value}: {message}',
    )


def malformed_records(observable: Observable, skipped: int) -> RelayWarning:
    return RelayWarning(
        'invalid data',
        f'SpyCloud sent {skipped} malformed breach record(s) for '
        f'{observable.value}; they are left out.',
    )


def catalog_missing(catalog_id: int) -> RelayWarning:
    return RelayWarning('not found', f'SpyCloud did not return results for {catalog_id}')


def catalog_failed(catalog_id: int, error: RelayError) -> RelayWarning:
    return RelayWarning(
        error.code, f'SpyCloud did not return results for {catalog_id}: {error.message}'
    )


def verdict_failed(observable: Observable, error: RelayError) -> RelayWarning:
    return RelayWarning(
        error.code,
        f'No verdict for {observable.value}: the SpyCloud lookup '
        f'behind it failed ({error.message}).',
    )


def cut_short(deadline: Deadline, what: str) -> RelayWarning:
    return RelayWarning(
        'deadline exceeded', f'The lookup deadline ({deadline.seconds:g} s) cut short {what}.'
    )


def day_refused(message: str, pages: int, what: str = 'a day') -> RelayWarning:
    """SpyCloud's 400 for a day (or a window of days) of the watchlist: not "no records",
    which a dashboard would show as no exposure, but days whose records did not arrive (or
    not all of them)."""
    if pages and 'cursor' in message.lower():
        return RelayWarning(
            'incomplete',
            f"SpyCloud's paging cursor expired after {pages} page(s) of {what} ({message})",
        )
    return RelayWarning(
        'invalid argument', f'SpyCloud refused the watchlist query of {what} (HTTP 400: {message})'
    )
