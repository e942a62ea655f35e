"""What may be said about an API token: a fingerprint or ``***``, never the token itself.

The one redaction rule, for the library and the command line alike. The token rides
in the query string (``apiToken``) or in the ``apikey`` header, so it leaks where URLs
and requests are quoted: transport errors, the headers aiohttp keeps of a request,
messages a server echoes back, a mistyped command line. It is scrubbed there:

- whatever follows ``apiToken=`` (also URL-quoted, ``apiToken%3D``), up to the end of
  the parameter;
- the value of an ``apikey`` header as it is written out: ``apikey: KEY``,
  ``'apikey': 'KEY'``, ``apikey=KEY``;
- the token in its plain and URL-quoted spellings: anywhere when it is long enough
  to be no word (real tokens are long), else only where it stands as a whole -- not
  inside a longer run of letters and digits -- so that a test token such as ``t`` or
  ``demo`` does not turn "complete" into "comple***e".
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

_PERSON = b"tmapi-async"

REDACTED = "***"

# Shorter tokens could be part of ordinary words; longer ones cannot by accident.
_WORDLIKE = 8

# The value of an apiToken parameter, in a URL as sent or quoted inside another one.
_PARAMETER = re.compile(r"(?i)(apiToken(?:=|%3D|%253D))(?:(?!%26|%2526)[^&\s\"'<>()\[\],;#])+")

# The value of an apikey header, as a request, a dict or a log line writes it out.
_HEADER = re.compile(r"""(?i)(\bapikey["']?\s*[:=]\s*["']?)[^&\s"'<>()\[\]{},;#]+""")


def fingerprint(token: str) -> str:
    """16 hex digits of a keyed hash of ``token``: names it in Redis keys and summaries
    without revealing a character of it."""
    return hashlib.blake2b(token.encode(), digest_size=8, person=_PERSON).hexdigest()


def short_fingerprint(token: str | None) -> str:
    """The first 8 hex digits of :func:`fingerprint`: names a token in summaries, logs,
    metrics and the simulator's request log; ``""`` for no token."""
    return fingerprint(token)[:8] if token else ""


def _spellings(token: str) -> set[str]:
    """The token as it may appear: as given, and %-quoted as URLs carry it."""
    return {token, quote(token, safe=""), quote(token), quote_plus(token)}


def _pattern(spelling: str) -> str:
    pattern = re.escape(spelling)
    if len(spelling) >= _WORDLIKE:
        return pattern
    # A short token is a token only where it is not part of a longer word; "%2F" and
    # the like before it are URL escapes, a boundary too.
    if spelling[0].isalnum():
        pattern = rf"(?:(?<![A-Za-z0-9])|(?<=%[0-9A-Fa-f]{{2}})){pattern}"
    if spelling[-1].isalnum():
        pattern = rf"{pattern}(?![A-Za-z0-9])"
    return pattern


class Redactor:
    """Scrubs the given tokens from texts, by the rule of the module docstring.

    ``Redactor(["tok"]).scrub(text)``; tokens that are empty or blank are ignored.
    """

    __slots__ = ("_tokens",)

    def __init__(self, tokens: Iterable[str | None] = ()) -> None:
        found = {t.strip() for t in tokens if t and t.strip()}
        spellings = {s for t in found for s in _spellings(t)}
        # Longest first: a quoted spelling is not half-scrubbed by a shorter one.
        ordered = sorted(spellings, key=len, reverse=True)
        self._tokens = re.compile("|".join(map(_pattern, ordered))) if ordered else None

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of a token (see above) replaced by ``***``."""
        text = _PARAMETER.sub(rf"\g<1>{REDACTED}", text)
        text = _HEADER.sub(rf"\g<1>{REDACTED}", text)
        if self._tokens is not None:
            text = self._tokens.sub(REDACTED, text)
        return text

    def mentions(self, text: str) -> bool:
        """Whether ``text`` holds anything :meth:`scrub` would remove."""
        return self.scrub(text) != text


@functools.lru_cache(maxsize=8)
def redactor(token: str) -> Redactor:
    """The :class:`Redactor` of one token (built once: messages are scrubbed often)."""
    return Redactor((token,))


def redact(text: str, token: str) -> str:
    """``text`` scrubbed of ``token`` (see :class:`Redactor`)."""
    return redactor(token).scrub(text)
