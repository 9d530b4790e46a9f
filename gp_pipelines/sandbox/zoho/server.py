"""Run the Zoho Analytics sandbox under uvicorn on 127.0.0.1 in a background thread (tests, demo, dev)."""

from __future__ import annotations

from typing import Any

import httpx
import uvicorn

from ..threaded import ThreadedAppServer
from .app import ZohoSandbox, ZohoSandboxIdentity, ZohoSandboxOptions, create_app, sandbox_identity

# Set by the local stack when the sandbox runs: the built-in config then exports to it.
ZOHO_SANDBOX_URL_ENV = "GP_ZOHO_SANDBOX_URL"
# The variables the built-in sandbox config names for the sandbox's Self Client (never real secrets).
CLIENT_ID_ENV = "GP_SANDBOX_ZOHO_CLIENT_ID"
CLIENT_SECRET_ENV = "GP_SANDBOX_ZOHO_CLIENT_SECRET"
REFRESH_TOKEN_ENV = "GP_SANDBOX_ZOHO_REFRESH_TOKEN"


def sandbox_zoho_section(url: str, seed: int) -> dict[str, Any]:
    """The `zoho_analytics` config section for a sandbox at `url` started with `seed`. Jobs finish after one
    poll there, so the poll interval is short; everything else is as against the real service."""
    identity = sandbox_identity(seed)
    return {
        "accounts_url": url.rstrip("/"),
        "api_url": url.rstrip("/"),
        "org_id": identity.org_id,
        "workspace_id": identity.workspace_id,
        "client_id_env": CLIENT_ID_ENV,
        "client_secret_env": CLIENT_SECRET_ENV,
        "refresh_token_env": REFRESH_TOKEN_ENV,
        "poll_interval_seconds": 0.2,
        "throttle_wait_seconds": 10.0,
    }


class ZohoSandboxServer(ThreadedAppServer):
    """Zoho Analytics (accounts and API hosts on one port; `port=0` picks a free one)."""

    label = "Zoho Analytics sandbox"

    def __init__(self, options: ZohoSandboxOptions | None = None, port: int = 0) -> None:
        self.options = options or ZohoSandboxOptions()
        super().__init__(create_app(self.options), port)
        self.sandbox: ZohoSandbox = self.app.state.sandbox
        self.identity: ZohoSandboxIdentity = self.sandbox.identity

    def secret_environment(self) -> dict[str, str]:
        """The sandbox's client id, secret and refresh token under the variable names the config uses."""
        return {CLIENT_ID_ENV: self.identity.client_id, CLIENT_SECRET_ENV: self.identity.client_secret,
                REFRESH_TOKEN_ENV: self.identity.refresh_token}

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a control endpoint over HTTP (`faults`, `settings`, or `state` when `body` is None)."""
        url = f"{self.root_url}/sandbox/{path}"
        reply = httpx.get(url, timeout=10) if body is None else httpx.post(url, json=body, timeout=10)
        if reply.status_code != 200:
            raise ValueError(f"Zoho sandbox {path}: {reply.json().get('error', reply.text)}")
        return reply.json()

    def inject(self, **faults: Any) -> dict[str, Any]:
        return self.control("faults", faults)

    def state(self) -> dict[str, Any]:
        return self.control("state")


def serve_forever(options: ZohoSandboxOptions | None = None, port: int = 8767) -> None:
    uvicorn.run(create_app(options or ZohoSandboxOptions()), host="127.0.0.1", port=port, log_level="info",
                lifespan="off")
