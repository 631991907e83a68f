"""Moved to the top-level ``errors`` module; kept while imports move."""

from errors import *  # noqa: F401,F403
from errors import FATAL, WARNING  # noqa: F401
