"""How a key is sent: as the ``apikey`` header, as the ``apiToken`` query parameter, or
found out (``auto``).

TMAPI documents both: the endpoint's own page puts an ``apiToken`` in the query string,
newer pages send a key from the console's "API Keys" page as an ``apikey`` header. Which
one a given key needs is not documented, so ``auto`` sends the header, and on a 401 or
403 the query parameter once, and keeps whichever was accepted.

:class:`AuthScheme` is that choice for one key, in this process: plain state, with one
event to wait on. It is never stored anywhere: each process finds it out again, at the
cost of at most one refused request per key.
"""

from __future__ import annotations

import asyncio
import os
from typing import Final, Literal

from ._errors import AuthenticationError, InvalidParameterError, quote_input

__all__ = ["AUTH_MODES", "AuthMode", "AuthScheme", "Scheme", "auth_mode"]

AuthMode = Literal["auto", "header", "query"]
Scheme = Literal["header", "query"]

AUTH_MODES: Final[tuple[AuthMode, ...]] = ("auto", "header", "query")
"""The values of ``auth`` (``Client(auth=...)``, ``--auth``, ``TMAPI_AUTH``)."""

HEADER: Final = "apikey"
"""The request header that carries the key in the ``header`` scheme."""

_NAMES: Final[dict[Scheme, str]] = {
    "header": "the `apikey` header",
    "query": "the `apiToken` query parameter",
}


def auth_mode(value: str | None = None) -> AuthMode:
    """``value``, else ``TMAPI_AUTH``, else ``"auto"``, checked.

    Raises:
        InvalidParameterError: not one of :data:`AUTH_MODES` (the message names them).
    """
    if value is None:
        value = os.environ.get("TMAPI_AUTH") or "auto"
    mode = value.strip().lower() if isinstance(value, str) else value
    if mode not in AUTH_MODES:
        raise InvalidParameterError(
            f"auth must be one of {', '.join(AUTH_MODES)}, got {quote_input(value)}"
        )
    return mode


class AuthScheme:
    """Which way one key is sent, settled or being found out by one request.

    ``claim()`` gives ``(scheme, probing)``, or ``None`` while another request probes:
    wait for :meth:`wait` and claim again. A refused way is never tried again, so a key
    costs at most one refused request per client before its way is known (two when it
    is refused both ways, and then it is fatal). The probing request reports how it went:
    :meth:`accepted`, :meth:`refused` (which hands it the next scheme to try, or the
    error naming every refusal) or :meth:`undecided` (no verdict: another request
    probes). With a fixed ``mode`` the scheme is settled from the start.
    """

    __slots__ = ("_failed", "_probe", "_refusals", "_settled", "_untried")

    def __init__(self, mode: AuthMode = "auto") -> None:
        self._untried: list[Scheme] = ["header", "query"] if mode == "auto" else [mode]
        self._settled: Scheme | None = None if mode == "auto" else mode
        self._refusals: list[tuple[Scheme, AuthenticationError]] = []
        self._failed: AuthenticationError | None = None
        self._probe: asyncio.Event | None = None  # set when the probe in flight ends

    def __repr__(self) -> str:
        return f"AuthScheme(settled={self._settled!r}, untried={self._untried!r})"

    @property
    def settled(self) -> Scheme | None:
        """The scheme the API accepted (or the one fixed), ``None`` while unknown."""
        return self._settled

    def claim(self) -> tuple[Scheme, bool] | None:
        """The scheme to send with and whether this request probes; ``None`` while
        another request probes.

        Raises:
            AuthenticationError: every scheme was refused.
        """
        if self._settled is not None:
            return self._settled, False
        if self._failed is not None:
            raise self._failed
        if self._probe is not None:
            return None
        self._probe = asyncio.Event()
        return self._untried[0], True

    async def wait(self) -> None:
        """Until the probe in flight ends (then claim again)."""
        if self._probe is not None:
            await self._probe.wait()

    def accepted(self, scheme: Scheme) -> None:
        """An answer other than a refusal came to a request sent as ``scheme``."""
        if self._settled is None and self._failed is None:
            self._settled = scheme
            self._end_probe()

    def refused(self, scheme: Scheme, error: AuthenticationError) -> Scheme | AuthenticationError:
        """The API refused the key sent as ``scheme``: the next scheme the probing
        request tries, or the error (fatal) naming every scheme refused."""
        if self._settled is not None:  # it was accepted before: the key is refused now
            return _refusal([(scheme, error)])
        if self._failed is not None:
            return self._failed
        if scheme in self._untried:
            self._untried.remove(scheme)
            self._refusals.append((scheme, error))
        if self._untried:
            return self._untried[0]
        self._failed = _refusal(self._refusals)
        self._end_probe()
        return self._failed

    def undecided(self) -> None:
        """The probe ended without a verdict (a transient error, a stop): the next
        request to claim probes instead."""
        self._end_probe()

    def _end_probe(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.set()


def _refusal(refusals: list[tuple[Scheme, AuthenticationError]]) -> AuthenticationError:
    """One error naming each way the key was sent and what the API said to it."""
    ways = " and as ".join(f"{_NAMES[scheme]} ({error.message})" for scheme, error in refusals)
    last = refusals[-1][1]
    both = "both ways: " if len(refusals) > 1 else ""
    return AuthenticationError(f"key refused {both}as {ways}", code=last.code, status=last.status)
