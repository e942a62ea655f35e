"""``SimulatedTmapi``: the simulator served on a loopback port, as an async context manager."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from ._app import ENDPOINT, SIMULATOR_KEY, Simulator, create_app
from ._catalogue import Item, ShopCatalogue, shop_name_from_url
from ._config import SimulatorConfig
from ._log import RequestLog

__all__ = ["SimulatedTmapi", "check_loopback"]


def check_loopback(host: str) -> None:
    """Raise ``ValueError`` unless ``host`` is a loopback address (the simulator never listens
    on a network interface: it is a test double, with no authentication worth the name)."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to listen on non-loopback host {host!r}")


class SimulatedTmapi:
    """A running simulated TMAPI endpoint on ``host:port`` (port 0 = an ephemeral one).

    ``SimulatedTmapi(config, **knobs)``: ``knobs`` are :class:`SimulatorConfig` fields that
    override ``config``. Use ``async with SimulatedTmapi(...) as sim:`` and point the client at
    ``sim.url`` (base URL; the endpoint is ``sim.endpoint``). :meth:`configure` changes knobs
    between requests; ``sim.log`` holds the request log.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        /,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **knobs: Any,
    ) -> None:
        check_loopback(host)
        base = config if config is not None else SimulatorConfig()
        self._app = create_app(dataclasses.replace(base, **knobs) if knobs else base)
        self._sim: Simulator = self._app[SIMULATOR_KEY]
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> Self:
        """Bind and start serving; returns ``self``."""
        if self._runner is not None:
            return self
        if self._sim.closing.is_set():  # restarted after close: sleeps must sleep again
            self._sim.closing = asyncio.Event()
        # No access log (speed) and a short shutdown: hangs wake on close, hooks are the test's.
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def close(self) -> None:
        """Stop serving (in-flight hangs and latencies end at once)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            self._sim.closing.set()
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- addresses -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (use it in place of ``https://api.tmapi.io``)."""
        if self._runner is None:
            raise RuntimeError("simulator not started")
        return f"http://{self._host}:{self._port}"

    @property
    def endpoint(self) -> str:
        """Full URL of the shop-items endpoint."""
        return self.url + ENDPOINT

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        return self._port

    @property
    def app(self) -> web.Application:
        """The underlying aiohttp application."""
        return self._app

    # -- configuration and state --------------------------------------------------------------
    @property
    def config(self) -> SimulatorConfig:
        """The configuration in force; assign a new one to change it between requests."""
        return self._sim.config

    @config.setter
    def config(self, config: SimulatorConfig) -> None:
        self._sim.config = config

    def configure(self, **knobs: Any) -> SimulatorConfig:
        """Replace some knobs (``SimulatorConfig`` fields) from the next request on."""
        self._sim.config = dataclasses.replace(self._sim.config, **knobs)
        return self._sim.config

    @property
    def log(self) -> RequestLog:
        """The request log (tokens appear only as fingerprints)."""
        return self._sim.log

    def reset(self) -> None:
        """Clear the log, spent quotas, rate windows, attempt numbers and drift."""
        self._sim.reset()

    def prebuild(self, shops: Iterable[str]) -> int:
        """Build the catalogues of ``shops`` (names or URLs) ahead of the first request, so a
        benchmark measures the client, not catalogue generation; returns items built."""
        return self._sim.prebuild(self._name(s) for s in shops)

    # -- expectations for tests -------------------------------------------------------------------
    @staticmethod
    def shop_url(name: str) -> str:
        """The canonical shop URL for ``name``: ``https://NAME.1688.com``."""
        return f"https://{name}.1688.com"

    @staticmethod
    def _name(shop: str) -> str:
        if "://" not in shop:
            return shop
        name = shop_name_from_url(shop)
        if name is None:
            raise ValueError(f"not a shop URL: {shop!r}")
        return name

    def shop_size(self, shop: str) -> int:
        """Base size of a shop (name or URL) under the current config."""
        return self.config.shop_size(self._name(shop))

    def drift(self, shop: str) -> int:
        """Items inserted by drift so far in a shop (name or URL)."""
        return self._sim.drift(self._name(shop))

    def expected_items(
        self,
        shop: str,
        *,
        sort: str = "default",
        cat: str | None = None,
        cat_type: str | None = None,
        drift: int | None = None,
    ) -> list[Item]:
        """The full listing the simulator serves now for a shop (name or URL), in order;
        ``drift`` defaults to the shop's current drift."""
        name = self._name(shop)
        n = self._sim.drift(name) if drift is None else drift
        catalogue: ShopCatalogue = self._sim.catalogue(name, self.config.shop_size(name))
        return catalogue.items(sort, cat, cat_type if cat else None, n)
