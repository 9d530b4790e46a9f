"""Run the sandbox under uvicorn on 127.0.0.1, in a background thread (tests, demo) or blocking (CLI)."""

from __future__ import annotations

import uvicorn

from ..threaded import ThreadedAppServer
from .app import create_app
from .model import SandboxInstance, SandboxOptions
from .state import Sandbox


class SandboxServer(ThreadedAppServer):
    """The Cin7 Core sandbox on a real port (`port=0` picks a free one)."""

    label = "Cin7 sandbox"
    start_timeout_seconds = 180.0  # `large` builds ~200,000 sale plans before it listens
    date_header = False  # the app sends the virtual clock as `Date`

    def __init__(self, options: SandboxOptions | None = None, port: int = 0) -> None:
        self.options = options or SandboxOptions()
        super().__init__(create_app(self.options), port)
        self.sandbox: Sandbox = self.app.state.sandbox
        self.instances: list[SandboxInstance] = list(self.sandbox.instances)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/ExternalApi/v2/"


def serve_forever(options: SandboxOptions | None = None, port: int = 8700) -> None:
    """Blocking run for `gp-pipelines sandbox serve`; Ctrl-C stops it."""
    uvicorn.run(create_app(options or SandboxOptions()), host="127.0.0.1", port=port, log_level="info",
                lifespan="off", date_header=False)
