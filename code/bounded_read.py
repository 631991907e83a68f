"""An HTTP body read that ends at a size cap and a deadline, whatever the server sends.

``read(n)`` waits for all n bytes, so a server that trickles a byte at a time keeps each socket
read under its timeout and the exchange open for as long as it likes. ``read1`` returns what has
arrived, so the deadline is looked at after every arrival. Decoding (gzip, deflate) happens in
the same calls, at most ``chunk_bytes`` at a time, so the cap counts decoded bytes: a gzip bomb
is refused once the cap is passed, never inflated whole.

No web framework and no relay layer here: the key-set fetch and the SpyCloud transport both
read through this.
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


class DeadlinePassed(BoundedReadError):
    """``expired()`` turned true before the body ended."""


class Read1(Protocol):
    """What the loop needs of a response body: urllib3's ``HTTPResponse`` (``response.raw``)."""

    def read1(self, amt: int, decode_content: bool) -> bytes: ...


def read_bounded(
    raw: Read1, *, max_bytes: int, expired: Callable[[], bool], chunk_bytes: int = CHUNK_BYTES
) -> bytes:
    """The whole (decoded) body, or BodyTooLarge / DeadlinePassed as soon as either applies.

    Both are checked after each chunk, size first. A server that sends nothing at all is not
    this loop's to end: that is the socket's read timeout (or a watchdog's). Errors of the
    read itself (urllib3's, OSError) pass through for the caller to name.
    """
    body = bytearray()
    while True:
        chunk = raw.read1(chunk_bytes, decode_content=True)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f'the body is larger than {max_bytes} bytes', len(body))
        if expired():
            raise DeadlinePassed('the deadline passed before the body ended', len(body))
