"""Local stand-ins for the relay's two upstreams: the SpyCloud API and Cisco's JWKS host.

Both bind to 127.0.0.1 only and are meant for tests and benchmarks; see ``python -m simulator
--help`` for running them as a separate process.
"""

from .data import DEFAULT_API_KEY
from .jwks import JwksIssuer, mint_token_from_state
from .spycloud import SpyCloudSimulator

__all__ = ['SpyCloudSimulator', 'JwksIssuer', 'DEFAULT_API_KEY', 'mint_token_from_state']
