"""The ECB feeds as a Starlette app: the same paths and XML as `https://www.ecb.europa.eu/stats/eurofxref/`.

Routes: `GET /stats/eurofxref/eurofxref-daily.xml` (the last publication day on or before `today`),
`.../eurofxref-hist-90d.xml` (publication days in the 90 days up to `today`, newest first) and
`.../eurofxref-hist.xml` (every publication day from `start`). `POST /sandbox/faults` with
`{"faults": ["500", "malformed"]}` queues faults, one per following feed request.

Faults: `500`/`503` (an error status with an HTML body), `malformed` (a body that is not XML), `truncated`
(the document cut in the middle), `empty` (a well-formed envelope with no day in it).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gp_pipelines.connectors.ecb import DAILY_FEED, HISTORY_90D_FEED, HISTORY_FEED, render_ecb_xml

from .rates import CURRENCIES, day_rates, last_publication_day, publication_days

FAULTS = ("500", "503", "malformed", "truncated", "empty")
FEED_PREFIX = "/stats/eurofxref/"


@dataclass
class EcbSandboxOptions:
    seed: int = 42
    start: date = date(2018, 1, 1)  # first day of the historical feed (the real one starts 1999-01-04)
    today: date | None = None  # None = the real UTC date; rates are treated as published from 00:00 UTC
    currencies: tuple[str, ...] = CURRENCIES
    faults: tuple[str, ...] = ()  # consumed one per feed request, in order

    def validate(self) -> None:
        unknown = [f for f in self.faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown ECB sandbox faults {unknown}; known: {FAULTS}")
        missing = [c for c in self.currencies if c not in CURRENCIES]
        if missing:
            raise ValueError(f"the ECB sandbox has no rates for {missing}")


@dataclass
class EcbSandbox:
    options: EcbSandboxOptions
    pending_faults: deque[str] = field(default_factory=deque)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.options.validate()
        self.pending_faults.extend(self.options.faults)

    def inject(self, *faults: str) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown ECB sandbox faults {unknown}; known: {FAULTS}")
        with self._lock:
            self.pending_faults.extend(faults)

    def next_fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            return self.pending_faults.popleft() if self.pending_faults else None

    @property
    def today(self) -> date:
        return self.options.today or datetime.now(UTC).date()

    def days(self, feed: str) -> list[date]:
        today = self.today
        if feed == DAILY_FEED:
            return [last_publication_day(today)]
        first = today - timedelta(days=90) if feed == HISTORY_90D_FEED else self.options.start
        return sorted(publication_days(first, today), reverse=True)

    def document(self, feed: str) -> str:
        seed, currencies = self.options.seed, self.options.currencies
        return render_ecb_xml((day, day_rates(seed, day, currencies)) for day in self.days(feed))


def _faulted(fault: str, body: str) -> Response:
    if fault in ("500", "503"):
        return Response(f"<html><body><h1>{fault} Service Unavailable</h1></body></html>", status_code=int(fault),
                        media_type="text/html")
    if fault == "malformed":
        return Response("<html><body>Maintenance in progress</body>", media_type="text/xml")
    if fault == "truncated":
        return Response(body[: len(body) // 2], media_type="text/xml")
    return Response(render_ecb_xml([]), media_type="text/xml")  # empty


def create_app(options: EcbSandboxOptions | None = None) -> Starlette:
    sandbox = EcbSandbox(options or EcbSandboxOptions())

    def feed(name: str):
        async def handler(request: Request) -> Response:
            fault = sandbox.next_fault()
            body = sandbox.document(name)
            if fault is not None:
                return _faulted(fault, body)
            return Response(body, media_type="text/xml")

        return handler

    async def faults(request: Request) -> Response:
        body = await request.json()
        try:
            sandbox.inject(*body.get("faults", []))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"pending": list(sandbox.pending_faults)})

    routes = [Route(FEED_PREFIX + name, feed(name)) for name in (DAILY_FEED, HISTORY_90D_FEED, HISTORY_FEED)]
    routes.append(Route("/sandbox/faults", faults, methods=["POST"]))
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app
