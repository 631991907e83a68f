"""Local stand-ins for the relay's upstreams: the SpyCloud API, Cisco's JWKS host, and the
XDR (IROH) the sync imports incidents into.

All bind to 127.0.0.1 only and are meant for tests and benchmarks; see ``python -m simulator
--help`` for running them as a separate process.
"""

from .data import DEFAULT_API_KEY
from .jwks import JwksIssuer, mint_token_from_state
from .spycloud import SpyCloudSimulator
from .xdr import DEFAULT_XDR_CLIENT, XdrSimulator

__all__ = [
    'SpyCloudSimulator',
    'JwksIssuer',
    'XdrSimulator',
    'DEFAULT_API_KEY',
    'DEFAULT_XDR_CLIENT',
    'mint_token_from_state',
]
