"""The Langfuse media handshake: ids the SDK can predict, and upload URLs only we can sign.

The SDK computes the media id itself (base64url of the SHA-256, first 22 characters) and
cancels the upload if the server's differs, so ours is computed the same way. The upload URL
points back at this server; it carries an HMAC of (project, media id, expiry) in place of the
cloud storage signature, because the SDK sends the PUT without credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from urllib.parse import urlencode

#: How long an upload or download URL stays valid.
URL_TTL_S = 3600


def media_id(sha256_b64: str) -> str:
    """The SDK's id for content with this base64 SHA-256 (``+/`` -> ``-_``, 22 characters)."""
    return sha256_b64.replace("+", "-").replace("/", "_")[:22]


def valid_sha256_b64(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def sign(secret: bytes, action: str, project: str, media: str, expires: int) -> str:
    message = f"{action}\n{project}\n{media}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_query(secret: bytes, action: str, project: str, media: str) -> str:
    """``project=..&expires=..&signature=..`` for an upload or download URL."""
    expires = int(time.time()) + URL_TTL_S
    signature = sign(secret, action, project, media, expires)
    return urlencode({"project": project, "expires": expires, "signature": signature})


def check_signature(
    secret: bytes, action: str, project: str, media: str, expires: int, signature: str
) -> str | None:
    """None when the URL is genuine and fresh, else what is wrong with it."""
    if expires < time.time():
        return "this media URL has expired; ask for a new one"
    expected = sign(secret, action, project, media, expires)
    if not hmac.compare_digest(expected, signature):
        return "this media URL's signature is not valid"
    return None
