"""Errors are data: each failure is a RelayError that renders into XDR's envelope.

XDR expects HTTP 200 with ``{"errors": [{type, code, message}]}``; partial
results travel beside warnings, so a warning is a RelayError too.
"""

FATAL = 'fatal'
WARNING = 'warning'


class RelayError(Exception):
    code = 'unknown'
    type = FATAL

    def __init__(self, message):
        super().__init__(message)
        self.message = str(message)

    def json(self):
        return {'type': self.type, 'code': self.code, 'message': self.message}

    def __eq__(self, other):
        return isinstance(other, RelayError) and self.json() == other.json()

    def __hash__(self):
        return hash(tuple(self.json().items()))


class AuthorizationError(RelayError):
    code = 'authorization error'

    def __init__(self, reason):
        super().__init__(f'Authorization failed: {reason}')


class InvalidArgumentError(RelayError):
    code = 'invalid argument'


class NotFoundError(RelayError):
    code = 'not found'


class InternalServerError(RelayError):
    code = 'internal error'


class TooManyRequestsError(RelayError):
    code = 'too many requests'


class UnknownError(RelayError):
    code = 'unknown'


class WatchdogError(RelayError):
    code = 'health check failed'

    def __init__(self):
        super().__init__('Invalid Health Check')


class RouteError(RelayError):
    """An unknown route or a wrong method; these keep their HTTP status."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class RelayWarning(RelayError):
    """A non-blocking problem reported beside partial results."""
    type = WARNING

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def catalog_missing(catalog_id):
    return RelayWarning('not found', f'SpyCloud did not return results for {catalog_id}')
