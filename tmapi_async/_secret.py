"""What may be said about an API token: a fingerprint, never the token itself."""

from __future__ import annotations

import hashlib

_PERSON = b"tmapi-async"


def fingerprint(token: str) -> str:
    """16 hex digits of a keyed hash of ``token``: names it in Redis keys and summaries
    without revealing a character of it."""
    return hashlib.blake2b(token.encode(), digest_size=8, person=_PERSON).hexdigest()
