"""A local stand-in for the Shopify Admin REST API (orders, fulfillment orders, fulfillments with tracking).

Modules: `state` (shops, orders and their fulfillment orders, leaky buckets, faults, counters; in memory,
deterministic, thread-safe), `app` (Starlette routes, the endpoint list is in its docstring), `server` (uvicorn
in a background thread). Point `ShopifyClient(server.shop_url(shop), server.token(shop))` at it.
"""

from .app import create_app
from .server import ShopifySandboxServer, serve_forever
from .state import DEFAULT_SHOP, DEFAULT_TOKEN, FAULTS, ShopifySandbox, ShopifySandboxOptions

__all__ = [
    "DEFAULT_SHOP",
    "DEFAULT_TOKEN",
    "FAULTS",
    "ShopifySandbox",
    "ShopifySandboxOptions",
    "ShopifySandboxServer",
    "create_app",
    "serve_forever",
]
