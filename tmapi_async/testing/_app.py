"""The aiohttp application serving ``GET /1688/shop/items/v2`` like TMAPI does."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import msgspec
from aiohttp import web

from ._catalogue import SORTS, ShopCatalogue, shop_name_from_url
from ._config import SimulatorConfig
from ._days import catalogue_on
from ._faults import (
    ERROR_MESSAGES,
    HTML_200_BODY,
    HTML_502_BODY,
    Fault,
    FaultKind,
    decide_fault,
    latency_seconds,
)
from ._log import RequestLog, RequestRecord, fingerprint
from ._profiles import shop_category_tree, shop_profile

__all__ = [
    "ENDPOINT",
    "SHOP_CATEGORY_ENDPOINT",
    "SHOP_INFO_ENDPOINT",
    "SIMULATOR_KEY",
    "Simulator",
    "create_app",
]

#: Path of the simulated endpoint.
ENDPOINT: Final = "/1688/shop/items/v2"
#: Path of the simulated shop-profile endpoint.
SHOP_INFO_ENDPOINT: Final = "/1688/shop/shop_info"
#: Path of the simulated shop-category endpoint.
SHOP_CATEGORY_ENDPOINT: Final = "/1688/shop/category"

_JSON: Final = "application/json"
_REASONS: Final = {439: "Insufficient Balance", 499: "Client Closed Request"}
_SORTS: Final = frozenset(SORTS)
_TOKEN_FP_CACHE: Final = 4096
_NAME_CACHE: Final = 65536


class _Data(msgspec.Struct):
    page: int
    page_size: int
    total_count: int
    cat_id: str
    sort: str
    items: msgspec.Raw


class _Envelope(msgspec.Struct):
    code: int
    msg: str
    data: _Data | None


_encode = msgspec.json.Encoder().encode


def _error_body(code: int) -> bytes:
    return _encode(_Envelope(code=code, msg=ERROR_MESSAGES.get(code, "error"), data=None))


def _int_param(raw: str | None, default: int) -> int | None:
    """``default`` when absent or empty, the value when a plain integer >= 1, else ``None``."""
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    value = int(raw)
    return value if value >= 1 else None


class _Reject(Exception):
    def __init__(self, response: web.Response, outcome: str) -> None:
        self.response = response
        self.outcome = outcome


class Simulator:
    """The state behind one simulated endpoint: config, catalogues, accounts, drift, log.

    ``config`` may be replaced between requests; caches key on everything they depend on.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.log = RequestLog(self.config.log_max_records)
        self.closing = asyncio.Event()
        self._catalogues: OrderedDict[tuple[object, ...], ShopCatalogue] = OrderedDict()
        self._pages: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._error_bodies: dict[int, bytes] = {}
        self._fps: dict[str, str] = {}
        self._names: dict[str, str | None] = {}
        self._admitted: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        """Forget the log, quotas spent, rate windows, attempt numbers and drift."""
        self.log.reset()
        self._attempts: Counter[tuple[object, ...]] = Counter()
        self._quota_used: Counter[str] = Counter()
        self._rate_windows: dict[str, deque[float]] = {}
        self._shop_requests: Counter[str] = Counter()
        self._drift: Counter[str] = Counter()

    def drift(self, name: str) -> int:
        """Drift items inserted so far in shop ``name``."""
        return self._drift[name]

    def catalogue(self, name: str, size: int) -> ShopCatalogue:
        """The (cached, least recently used evicted) catalogue of shop ``name`` on the
        configured day."""
        day = self.config.day
        changes = self.config.day_changes()
        key = (name, size, day, changes) if day else (name, size)
        cat = self._catalogues.get(key)
        if cat is None:
            cat = self._catalogues[key] = catalogue_on(name, size, day, changes)
            if len(self._catalogues) > self.config.catalogue_cache_size:
                self._catalogues.popitem(last=False)
        else:
            self._catalogues.move_to_end(key)
        return cat

    def prebuild(self, names: Iterable[str]) -> int:
        """Build the catalogues of shops ``names`` now (a crawl then finds them ready);
        returns the number of items built. At most ``catalogue_cache_size`` shops are kept."""
        built = 0
        for name in names:
            cat = self.catalogue(name, self.config.shop_size(name))
            cat.build()
            built += cat.size
        return built

    # -- responses ---------------------------------------------------------------------------
    def _error(self, status: int, code: int | None = None) -> web.Response:
        code = status if code is None else code
        body = self._error_bodies.get(code)
        if body is None:
            body = self._error_bodies[code] = _error_body(code)
        return web.Response(
            body=body, status=status, reason=_REASONS.get(status), content_type=_JSON
        )

    def _page_body(
        self,
        name: str,
        size: int,
        drift: int,
        sort: str,
        cat: str | None,
        cat_type: str | None,
        page: int,
        page_size: int,
    ) -> bytes:
        day = self.config.day
        key: tuple[object, ...] = (name, size, drift, sort, cat, cat_type, page, page_size)
        if day:  # day 0 keeps the plain key: the hot path of benchmarks
            key += (day, self.config.day_changes())
        body = self._pages.get(key)
        if body is not None:
            return body
        start = (page - 1) * page_size
        total, items = self.catalogue(name, size).page(
            sort, cat, cat_type, drift, start, start + page_size
        )
        raw = msgspec.Raw(b"[" + b",".join(items) + b"]")
        data = _Data(page, page_size, total, cat or "", sort, raw)
        body = _encode(_Envelope(code=200, msg="success", data=data))
        self._pages[key] = body
        if len(self._pages) > self.config.page_cache_size:
            self._pages.popitem(last=False)
        return body

    # -- request handling --------------------------------------------------------------------
    def _fingerprint(self, token: str) -> str:
        fp = self._fps.get(token)
        if fp is None:
            if len(self._fps) > _TOKEN_FP_CACHE:
                self._fps.clear()
            fp = self._fps[token] = fingerprint(token)
        return fp

    def _shop_name(self, url: str) -> str | None:
        # URL parsing is a visible share of a cached page's cost; crawlers repeat URLs.
        try:
            return self._names[url]
        except KeyError:
            if len(self._names) > _NAME_CACHE:
                self._names.clear()
            name = self._names[url] = shop_name_from_url(url)
            return name

    def _admit(self, token: str | None, fp: str, now: float, accepted: bool) -> None:
        """Apply the account rules in the order a billing proxy would; raise ``_Reject``."""
        cfg = self.config
        if not token or not accepted or (cfg.tokens is not None and token not in cfg.tokens):
            raise _Reject(self._error(401), "unauthorized")
        quota = cfg.quotas.get(token, cfg.quota)
        if quota is not None and self._quota_used[fp] >= quota:
            raise _Reject(self._error(439), "quota_exceeded")
        window = None
        if cfg.rate_limit is not None:
            window = self._rate_windows.setdefault(fp, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= cfg.rate_limit:
                resp = self._error(429)
                if cfg.retry_after:
                    wait = window[0] + 1.0 - now if window else 1.0
                    resp.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                raise _Reject(resp, "rate_limited")
        if cfg.concurrency_limit is not None and self._admitted[fp] >= cfg.concurrency_limit:
            raise _Reject(self._error(503), "concurrency_limited")
        # Admitted: billed, counted in the rate window and in flight.
        self._quota_used[fp] += 1
        if window is not None:
            window.append(now)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server is closing (so shutdown never waits)."""
        if seconds <= 0 or self.closing.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.closing.wait()

    def _shop_body(self, endpoint: str, name: str) -> bytes:
        """The answer of a shop-profile or shop-category request (cached)."""
        cfg = self.config
        key: tuple[object, ...] = (endpoint, name, cfg.day, cfg.day_changes())
        body = self._pages.get(key)
        if body is None:
            if endpoint == SHOP_INFO_ENDPOINT:
                data = shop_profile(name, cfg.day)
            else:
                data = shop_category_tree(self.catalogue(name, cfg.shop_size(name)))
            body = _encode({"code": 200, "msg": "success", "data": data})
            self._pages[key] = body
            if len(self._pages) > cfg.page_cache_size:
                self._pages.popitem(last=False)
        return body

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for :data:`ENDPOINT`."""
        return await self._handle(request, self._serve)

    async def handle_shop_info(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for :data:`SHOP_INFO_ENDPOINT`: the shop's profile."""
        return await self._handle(request, self._serve_shop)

    async def handle_shop_category(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for :data:`SHOP_CATEGORY_ENDPOINT`: the shop's categories."""
        return await self._handle(request, self._serve_shop)

    async def _handle(
        self,
        request: web.Request,
        serve: Callable[[web.Request, RequestRecord], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """The account rules every endpoint shares (key, quota, rate, in flight), then
        ``serve``."""
        cfg = self.config
        token, auth = _key(request)
        fp = self._fingerprint(token) if token else ""
        rec = self.log.begin(cfg.clock(), fp, auth)
        rec.endpoint = request.path
        try:
            try:
                accepted = cfg.auth == "both" or auth in (cfg.auth, "both")
                self._admit(token, fp, rec.arrived, accepted)
            except _Reject as reject:
                rec.outcome = reject.outcome
                rec.status = rec.code = reject.response.status
                return reject.response
            self._admitted[fp] += 1
            try:
                return await serve(request, rec)
            finally:
                self._admitted[fp] -= 1
        finally:
            self.log.end(rec, cfg.clock())

    async def _serve(self, request: web.Request, rec: RequestRecord) -> web.StreamResponse:
        cfg = self.config
        q = request.query
        name = self._shop_name(q.get("shop_url") or "")
        page = _int_param(q.get("page"), 1)
        page_size = _int_param(q.get("page_size"), 20)
        sort = q.get("sort") or "default"
        cat = q.get("cat") or None
        cat_type = q.get("cat_type") or None
        ok = sort in _SORTS and cat_type in (None, "0", "1")
        params = (name, page, page_size) if ok and name and page and page_size else None
        key: tuple[object, ...] = ()
        if params is not None:
            rec.shop, rec.page, rec.page_size, rec.sort = name, page, page_size, sort
            rec.cat, rec.cat_type = cat, cat_type
            key = (name, page, page_size, sort, cat, cat_type)
        await self._arrive(rec, key)
        if params is None:
            return self._bad_parameter(rec)
        name, page, page_size = params
        if (failed := self._failing(rec, name, page)) is not None:
            return failed

        if cfg.drift_every:
            n = self._shop_requests[name] = self._shop_requests[name] + 1
            if n % cfg.drift_every == 0:
                self._drift[name] = min(cfg.drift_max, self._drift[name] + cfg.drift_items)
        rec.drift = drift = self._drift[name]
        body = self._page_body(
            name,
            cfg.shop_size(name),
            drift,
            sort,
            cat,
            cat_type if cat else None,
            page,
            min(page_size, cfg.page_size_max),
        )
        return await self._answer(request, rec, key, body)

    async def _serve_shop(self, request: web.Request, rec: RequestRecord) -> web.StreamResponse:
        """A shop's profile or categories: the same parameters check, latency, failing
        shops and faults as a page (a failing shop fails here when its page 1 does)."""
        name = self._shop_name(request.query.get("shop_url") or "")
        key: tuple[object, ...] = ()
        if name:
            rec.shop = name
            key = (request.path, name)
        await self._arrive(rec, key)
        if not name:
            return self._bad_parameter(rec)
        if (failed := self._failing(rec, name, 1)) is not None:
            return failed
        return await self._answer(request, rec, key, self._shop_body(request.path, name))

    async def _arrive(self, rec: RequestRecord, key: tuple[object, ...]) -> None:
        """Number the attempt at ``key`` (if the parameters were read), wait its latency,
        then the ``on_request`` hook."""
        cfg = self.config
        if key:
            self._attempts[key] += 1
            rec.attempt = self._attempts[key]
            if cfg.latency_ms[1] > 0:
                await self._sleep(latency_seconds(cfg.seed, key, rec.attempt, *cfg.latency_ms))
        if cfg.on_request is not None:
            await cfg.on_request(rec)

    def _bad_parameter(self, rec: RequestRecord) -> web.Response:
        """422: the parameters name no shop or page."""
        rec.outcome, rec.status, rec.code = "bad_parameter", 422, 422
        return self._error(422)

    def _failing(self, rec: RequestRecord, name: str, page: int) -> web.Response | None:
        """The failing code for a page of a failing shop (``None``: not failing)."""
        failing_from = self.config.failing_shops.get(name)
        if failing_from is None or page < failing_from:
            return None
        rec.outcome = "failing_shop"
        rec.status = rec.code = self.config.failing_code
        return self._error(self.config.failing_code)

    async def _answer(
        self, request: web.Request, rec: RequestRecord, key: tuple[object, ...], body: bytes
    ) -> web.StreamResponse:
        """``body``, or the fault the seed draws for this request instead."""
        cfg = self.config
        fault = None
        if cfg.fault_rate > 0:
            fault = decide_fault(
                cfg.seed, key, rec.attempt, cfg.fault_rate, cfg.fault_kinds, cfg.fault_codes
            )
        if fault is None:
            rec.outcome, rec.status, rec.code = "ok", 200, 200
            return web.Response(body=body, content_type=_JSON)
        return await self._fault(request, rec, fault, body)

    async def _fault(
        self, request: web.Request, rec: RequestRecord, fault: Fault, body: bytes
    ) -> web.StreamResponse:
        kind = fault.kind
        rec.outcome = f"fault_{kind.value}"
        if kind is FaultKind.STATUS:
            rec.status = rec.code = fault.code
            return self._error(fault.code)
        if kind is FaultKind.ENVELOPE:
            rec.status, rec.code = 200, fault.code
            return self._error(200, fault.code)
        if kind is FaultKind.TRUNCATED:
            rec.status, rec.code = 200, None
            cut = 1 + int(fault.cut * (len(body) - 2))  # never empty, never whole
            return web.Response(body=body[:cut], content_type=_JSON)
        if kind is FaultKind.HTML_502:
            rec.status, rec.code = 502, None
            return web.Response(body=HTML_502_BODY, status=502, content_type="text/html")
        if kind is FaultKind.HTML_200:
            rec.status, rec.code = 200, None
            return web.Response(body=HTML_200_BODY, content_type="text/html")
        if kind is FaultKind.HANG:
            await self._sleep(self.config.hang_seconds)
            rec.status, rec.code = 200, 200
            return web.Response(body=body, content_type=_JSON)
        # RESET: abort with SO_LINGER 0 so the peer gets an RST, not a clean EOF.
        rec.status, rec.code = 0, None
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        raise _ConnectionDropped


def _key(request: web.Request) -> tuple[str | None, str]:
    """The key a request sends and how: ``header``, ``query``, ``both`` (the header's
    key counts) or ``none``."""
    header = request.headers.get("apikey")
    query = request.query.get("apiToken")
    if header and query:
        return header, "both"
    if header:
        return header, "header"
    return (query, "query") if query else (None, "none")


class _ConnectionDropped(web.HTTPException):
    # Raised after aborting the transport: aiohttp then has nothing to write and logs nothing.
    status_code = 500


SIMULATOR_KEY: Final = web.AppKey("tmapi_simulator", Simulator)


async def _on_shutdown(app: web.Application) -> None:
    app[SIMULATOR_KEY].closing.set()


def create_app(config: SimulatorConfig | None = None) -> web.Application:
    """Build the aiohttp application of a simulated TMAPI endpoint.

    The :class:`Simulator` state is at ``app[SIMULATOR_KEY]``; serve it with any aiohttp runner
    (``SimulatedTmapi`` does it for you).
    """
    app = web.Application()
    sim = Simulator(config)
    app[SIMULATOR_KEY] = sim
    app.router.add_get(ENDPOINT, sim.handle)
    app.router.add_get(SHOP_INFO_ENDPOINT, sim.handle_shop_info)
    app.router.add_get(SHOP_CATEGORY_ENDPOINT, sim.handle_shop_category)
    app.on_shutdown.append(_on_shutdown)
    return app
