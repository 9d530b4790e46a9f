"""A local stand-in for Zoho Analytics (REST API v2 and its OAuth accounts host) over real HTTP.

Modules: `store` (the workspace's tables in an in-memory SQLite database, imports, read-only SQL), `app`
(Starlette routes: token, metadata, imports, jobs, SQL export, limits, units, faults), `server` (uvicorn in a
background thread). The organisation, workspace and Self Client credentials derive from the seed
(`sandbox_identity`). Point a `ZohoAnalyticsClient` at `server.root_url` for both the API and accounts hosts.
"""

from .app import DEFAULT_LIMITS, FAULT_KEYS, ZohoSandboxIdentity, ZohoSandboxOptions, create_app, sandbox_identity
from .server import (
    CLIENT_ID_ENV,
    CLIENT_SECRET_ENV,
    REFRESH_TOKEN_ENV,
    ZOHO_SANDBOX_URL_ENV,
    ZohoSandboxServer,
    sandbox_zoho_section,
    serve_forever,
)

__all__ = ["CLIENT_ID_ENV", "CLIENT_SECRET_ENV", "DEFAULT_LIMITS", "FAULT_KEYS", "REFRESH_TOKEN_ENV",
           "ZOHO_SANDBOX_URL_ENV", "ZohoSandboxIdentity", "ZohoSandboxOptions", "ZohoSandboxServer", "create_app",
           "sandbox_identity", "sandbox_zoho_section", "serve_forever"]
