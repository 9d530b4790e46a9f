"""A local stand-in for the ECB euro reference rate feeds (daily, 90-day, historical XML), seeded and offline.

Modules: `rates` (the TARGET calendar and deterministic rates), `app` (Starlette routes, fault injection),
`server` (uvicorn in a background thread). Point `FxSource.ecb(server.base_url)` at it.
"""

from .app import FAULTS, EcbSandboxOptions, create_app
from .rates import CURRENCIES, is_publication_day, reference_rate, target_holidays
from .server import EcbSandboxServer, serve_forever

__all__ = ["CURRENCIES", "FAULTS", "EcbSandboxOptions", "EcbSandboxServer", "create_app", "is_publication_day",
           "reference_rate", "serve_forever", "target_holidays"]
