"""The sync's own failure: what stops a run that is neither SpyCloud's nor XDR's."""

from spycloud_relay.errors import RelayError


class SyncError(RelayError):
    """The sync cannot go on: its checkpoint or its lock failed (the message names which and
    where, never a secret)."""

    code = 'sync error'
