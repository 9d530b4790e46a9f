"""Run the Shopify sandbox under uvicorn on 127.0.0.1, in a background thread (tests, demo) or blocking (CLI)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import uvicorn

from ..threaded import ThreadedAppServer
from .app import create_app
from .state import ShopifySandbox, ShopifySandboxOptions


class ShopifySandboxServer(ThreadedAppServer):
    """The Shopify sandbox on a real port (`port=0` picks a free one). `shop_url(shop)` is what a
    `ShopifyClient` takes as its `shop_url`; the helpers below call the control endpoints over HTTP."""

    label = "Shopify sandbox"

    def __init__(self, options: ShopifySandboxOptions | None = None, port: int = 0) -> None:
        self.options = options or ShopifySandboxOptions()
        super().__init__(create_app(self.options), port)
        self.sandbox: ShopifySandbox = self.app.state.sandbox
        self._http: httpx.Client | None = None

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        super().stop()

    def shop_url(self, shop: str | None = None) -> str:
        return f"{self.root_url}/shops/{shop or next(iter(self.options.shops))}"

    def token(self, shop: str | None = None) -> str:
        return self.sandbox.shops[shop or next(iter(self.options.shops))].token

    def control(self, method: str, action: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        if self._http is None:  # one client: building one per call costs ~30 ms (its SSL context)
            self._http = httpx.Client(timeout=10)
        response = self._http.request(method, f"{self.root_url}/sandbox/{action}", json=body, params=params)
        if response.status_code >= 400:
            raise RuntimeError(f"Shopify sandbox {method} /sandbox/{action}: {response.status_code} {response.text}")
        return response.json()

    def create_order(self, line_items: list[dict], *, shop: str | None = None, **fields: Any) -> dict:
        body = {"shop": shop or next(iter(self.options.shops)), "line_items": line_items, **fields}
        return self.control("POST", "orders", body)["order"]

    def orders(self, shop: str | None = None) -> list[dict]:
        return self.control("GET", "orders", params={"shop": shop} if shop else None)["orders"]

    def inject(self, fault: str, count: int = 1, **where: str) -> None:
        self.control("POST", "faults", {"fault": fault, "count": count, **where})

    def stats(self) -> dict:
        return self.control("GET", "stats")

    def reset(self) -> None:
        self.control("POST", "reset")


def serve_forever(options: ShopifySandboxOptions | None = None, port: int = 8767) -> None:
    """Blocking run for the CLI; Ctrl-C stops it."""
    uvicorn.run(
        create_app(options or ShopifySandboxOptions()), host="127.0.0.1", port=port, log_level="info", lifespan="off"
    )
