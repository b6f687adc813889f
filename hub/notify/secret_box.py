"""Secrets the hub keeps for others (a webhook's signing secret), sealed at rest.

An agency's webhook secret is what proves a delivery came from the hub; whoever reads it
from a backup or the database can forge deliveries. It is stored only as
`sealed:v1:<base64(nonce | AES-GCM ciphertext)>` under a key derived from the master key
for this purpose, authenticated with what it belongs to (the agency), so a sealed value
copied onto another agency's row does not open. A value stored before sealing (no
prefix) still reads, and is sealed the next time it is set.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.errors import HubError

PURPOSE = b"stored-secrets"
"""What the key is derived for (`MasterKey.derive(PURPOSE)`)."""
_PREFIX = "sealed:v1:"
_NONCE = 12


class SecretUnreadable(HubError):
    """A sealed secret did not open: another master key, another owner, or altered."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, secret: str, *, owner: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, secret.encode(), owner.encode())
        return _PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, *, owner: str) -> str:
        if not is_sealed(stored):
            return stored  # kept before secrets were sealed
        try:
            raw = base64.b64decode(stored[len(_PREFIX) :], validate=True)
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], owner.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretUnreadable(
                f"the stored secret of {owner} does not open with this master key"
            ) from None


def is_sealed(stored: str) -> bool:
    return stored.startswith(_PREFIX)
