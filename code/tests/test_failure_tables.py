"""spycloud/failures.py's tables read in order: what ended a read outranks the clock, and each
table's last row answers anything. The answers through HTTP are test_spycloud_errors.py's and
test_failing_upstreams.py's; these are the orderings no simulator fault can pin down."""

import pytest
from urllib3.exceptions import ProtocolError

from spycloud_relay.bounded_read import BodyTooLarge, DeadlinePassed
from spycloud_relay.deadline import Deadline, DeadlineReached
from spycloud_relay.errors import UnknownError
from spycloud_relay.spycloud.failures import ANSWERS, EXCHANGES, exchange_error

pytestmark = pytest.mark.pure
KEY = 'k' * 32


def failed(error, deadline):
    return exchange_error(error, api_key=KEY, host='api.example', deadline=deadline)


def test_a_body_over_its_cap_is_too_large_even_once_the_deadline_has_passed():
    error = failed(BodyTooLarge(4096, 4097), Deadline(0))
    assert isinstance(error, UnknownError)
    assert error.message == 'SpyCloud sent an answer larger than 4096 bytes.'


def test_a_body_still_arriving_at_the_deadline_is_the_deadline():
    assert isinstance(failed(DeadlinePassed('late', 10), Deadline(60)), DeadlineReached)


def test_a_library_error_quoting_the_key_is_redacted():
    error = failed(ProtocolError(f'header X-API-Key: {KEY} refused'), Deadline(60))
    assert error.message == (
        'Unable to connect to SpyCloud at api.example: header X-API-Key: [redacted] refused'
    )


@pytest.mark.parametrize('table', [ANSWERS, EXCHANGES])
def test_the_last_row_of_each_table_answers_anything(table):
    assert table[-1].applies(object())
