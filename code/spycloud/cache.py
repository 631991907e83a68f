"""The client's caches live in state/ (in-process, or Redis with REDIS_URL); these names stay
for the modules that import them from here."""

from state.store import MISSING
from state.store import MemoryStore as MemoryCache

__all__ = ['MISSING', 'MemoryCache']
