"""ModuleSettings: the XDR module instance's configuration, from verified claims.

XDR strips the ``custom_`` prefix of each configuration_spec key, so the form's
``custom_key`` arrives as the claim ``key``. These settings belong to one
request and travel explicitly through the call chain.
"""
from dataclasses import dataclass

DEFAULT_ENTITIES_LIMIT = 100
MAX_ENTITIES_LIMIT = 1000

_TRUE = {'true', 'yes', '1', 'on'}
_FALSE = {'false', 'no', '0', 'off', ''}


@dataclass(frozen=True)
class ModuleSettings:
    api_key: str
    entities_limit: int = DEFAULT_ENTITIES_LIMIT
    show_passwords: bool = False

    @classmethod
    def from_claims(cls, claims):
        """Raise KeyError when the API key is missing: the caller maps it to an auth error."""
        api_key = claims['key']
        if not isinstance(api_key, str) or not api_key.strip():
            raise KeyError('key')
        return cls(
            api_key=api_key.strip(),
            entities_limit=entities_limit(claims.get('CTR_ENTITIES_LIMIT')),
            show_passwords=flag(claims.get('show_passwords'), default=False),
        )


def entities_limit(raw):
    """Positive integers up to 1000; anything else falls back to 100, as XDR modules do."""
    if isinstance(raw, bool):
        return DEFAULT_ENTITIES_LIMIT
    try:
        value = int(raw) if isinstance(raw, float) else int(str(raw).strip())
    except (TypeError, ValueError):
        return DEFAULT_ENTITIES_LIMIT
    if value <= 0:
        return DEFAULT_ENTITIES_LIMIT
    return min(value, MAX_ENTITIES_LIMIT)


def flag(raw, default):
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return default
