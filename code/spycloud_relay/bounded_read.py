"""An HTTP body read that ends at a size cap and a deadline, whatever the server sends.

``read(n)`` waits for all n bytes, so a server that trickles a byte at a time keeps each socket
read under its timeout and the exchange open for as long as it likes. ``read1`` returns what has
arrived, so the deadline is looked at after every arrival, and each socket wait can be capped by
what is left of it (the timeout set when the request was sent counted from then: a body that
stalls after its head would otherwise outlive the deadline). Decoding (gzip, deflate) happens
in the same calls, at most ``chunk_bytes`` at a time, so the cap counts decoded bytes: a gzip
bomb is refused once the cap is passed, never inflated whole. A body not read to its end has
its connection closed, never returned to the pool half-read.

No web framework and no relay layer here: the key-set fetch (api/jwks.py) and the SpyCloud
transport (spycloud/transport.py) both read through this.
"""

from collections.abc import Callable
from typing import Protocol

CHUNK_BYTES = 16 * 1024


class BoundedReadError(Exception):
    """The body was not read whole; ``received`` says how many (decoded) bytes were."""

    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received


class BodyTooLarge(BoundedReadError):
    """More than ``max_bytes`` arrived: the rest is left unread."""

    def __init__(self, max_bytes: int, received: int) -> None:
        super().__init__(f'the body is larger than {max_bytes} bytes', received)
        self.max_bytes = max_bytes


class DeadlinePassed(BoundedReadError):
    """``expired()`` turned true before the body ended."""


class Body(Protocol):
    """What the read needs of a response: urllib3's HTTPResponse (requests' ``response.raw``)."""

    @property
    def connection(self) -> object: ...

    def read1(self, amt: int, decode_content: bool) -> bytes: ...

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


def read_bounded(
    raw: Body,
    *,
    max_bytes: int,
    expired: Callable[[], bool],
    chunk_bytes: int = CHUNK_BYTES,
    wait_at_most: Callable[[], float] | None = None,
) -> bytes:
    """The whole (decoded) body, or BodyTooLarge / DeadlinePassed as soon as either applies.

    Both are checked after each chunk, size first. A server that sends nothing at all is the
    socket's to end: with ``wait_at_most``, each read waits on it at most that many seconds
    (asked before every read); without, its read timeout (or a watchdog) does. Errors of the
    read itself (urllib3's, OSError) pass through for the caller to name. Read whole, the
    connection goes back to its pool; cut short, it is closed.
    """
    body, complete = bytearray(), False
    try:
        while True:
            if wait_at_most is not None:
                _cap_wait(raw, wait_at_most())
            chunk = raw.read1(chunk_bytes, decode_content=True)
            if not chunk:
                complete = True
                return bytes(body)
            body += chunk
            if len(body) > max_bytes:
                raise BodyTooLarge(max_bytes, len(body))
            if expired():
                raise DeadlinePassed('the deadline passed before the body ended', len(body))
    finally:
        if not complete:
            raw.close()  # a half-read connection is not put back in the pool
        raw.release_conn()


def _cap_wait(raw: Body, seconds: float) -> None:
    """The socket under ``raw`` waits for the next bytes at most ``seconds``."""
    sock = getattr(raw.connection, 'sock', None)
    if sock is not None:
        sock.settimeout(seconds)
