"""What makes a Redis dump useless without the tenant's SpyCloud API key.

Two keys are derived from the API key with HKDF-SHA256: one names the entries (an HMAC of the
logical key, which holds an e-mail address or a catalog id, so even "is this address cached?"
needs the API key), one seals their values with AES-256-GCM under a random 96-bit nonce, with
the entry's name as associated data, so a value moved to another name does not open.
"""

import hashlib
import hmac
import json
import os
from collections.abc import Hashable
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT = b'spycloud-xdr-relay/state'
FORMAT = b'\x01'  # the first byte of every sealed value: a later format can be told apart
NONCE_BYTES = 12
PREFIX = 'relay'


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=SALT, info=purpose).derive(
        secret.encode('utf-8')
    )


@dataclass(frozen=True)
class TenantKeys:
    """The keys derived from one API key: naming entries and sealing their values."""

    naming: bytes
    sealing: AESGCM

    def name(self, namespace: str, key: Hashable) -> str:
        """The Redis key of a logical key: ``relay:<namespace>:<HMAC-SHA256 hex>``."""
        canonical = json.dumps(
            [namespace, key], separators=(',', ':'), ensure_ascii=False, default=repr
        )
        digest = hmac.new(self.naming, canonical.encode('utf-8'), hashlib.sha256).hexdigest()
        return f'{PREFIX}:{namespace}:{digest}'

    def seal(self, name: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT + nonce + self.sealing.encrypt(nonce, plaintext, FORMAT + name.encode())

    def open(self, name: str, sealed: bytes) -> bytes | None:
        """The plaintext, or None for a value sealed under another API key or name, or altered."""
        if (
            not isinstance(sealed, bytes)
            or len(sealed) < 1 + NONCE_BYTES + 16
            or sealed[:1] != FORMAT
        ):
            return None
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self.sealing.decrypt(nonce, body, FORMAT + name.encode())
        except InvalidTag:
            return None


@lru_cache(maxsize=1024)
def tenant_keys(secret: str) -> TenantKeys:
    """Derived once per API key and process (HKDF is cheap, but not free at every call)."""
    return TenantKeys(
        naming=_derive(secret, b'entry names'), sealing=AESGCM(_derive(secret, b'entry values'))
    )


def budget_name(fingerprint: str) -> str:
    """The Redis key of a key's rate budget: a hash of its fingerprint (rates are no secret,
    but the fingerprint is the caches' key and stays out of Redis)."""
    digest = hashlib.sha256(b'spycloud-xdr-relay/budget\0' + fingerprint.encode()).hexdigest()
    return f'{PREFIX}:budget:{digest}'
