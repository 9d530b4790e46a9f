"""A faithful local Cin7 Core API v2 over real HTTP (contract: reference/cin7_core_api.md §10).

Modules: `model` (instances, options, stamps, FX, virtual clock), `generator` (seeded data), `store` (one
instance's records and stock ledger), `sales` (the sale state machine, pure), `endpoints` (list endpoints as
data + the one list handler), `limiter`, `faults`, `trading` (/sandbox/advance, hard delete), `state` (the
whole sandbox), `app` (routes), `server` (uvicorn in a thread).

Choices where the real API is undocumented:
- Request order: credentials (403) → limiter → fault draw → endpoint. Throttled calls are not counted in
  the window; faulted calls are (they reached the server).
- The virtual clock starts at `SandboxOptions.clock_start` or real UTC now; history is anchored at that
  instant floored to UTC midnight and ends before it, so mutations are always newer than history.
- Unknown sale/document/task IDs → 400 Error Model; a bad JSON body → 400; a wrong verb on a known path →
  405. Unknown paths → 200 HTML (or 404 with `unknown_path="404"`), checked after credentials.
- Undo (`DELETE sale?Void=false`) of a sale whose order is not AUTHORISED → 400 "Nothing to undo"; Undo with
  payments or credit notes → 400; Void with an AUTHORISED invoice → 400.
- Advanced sales keep ORDERED/BACKORDERED while fulfilling; any sale fully shipped and not invoiced is
  SHIPPED; Simple sales show PICKING/PICKED/PACKING/PACKED/SHIPPING.
- `ShipBy`/`RequiredBy` filters match the calendar day; `Search` is a case-insensitive substring match.
- Generated history does not move generated stock levels; API and simulated writes do (allocate on order
  authorisation, consume on ship, release on void/undo).
- Pick lines may carry their own `Location`/`LocationID` (default: the sale's). Authorising a pick holds the
  stock at each line's location (moving the order's hold from elsewhere); a location without enough free
  stock refuses it with "Not enough stock at location X for SKU Y" (no picking into negative stock; also for
  AUTOPICK of a backordered order). Shipping consumes, and undo/void restocks, at each line's location.
- `sale/payment`: GET ?SaleID= is a bare array of invoice payments (`Type: PAYMENT`; credit-note refunds are
  not listed); POST needs the invoice's `TaskID`, refuses an amount above the balance; DELETE ?ID= answers
  with the sale's remaining payments. An invoice is PAID once fully paid, AUTHORISED again when a payment goes.
  Undo of the sale, and Void/Undo of an invoice, are refused while any payment exists.
- `DELETE sale/invoice?TaskID=&Void=`: Void → VOIDED, Undo → DRAFT. POST sale/invoice with an existing
  invoice's `TaskID` (or PUT) edits a DRAFT invoice and may authorise it; it keeps its TaskID and number.
- PUT sale `Location`/`LocationID` only while the Order is DRAFT or NOT AVAILABLE; the saleList
  `OrderLocationID` follows.
"""

from .app import create_app
from .model import SandboxInstance, SandboxOptions, sandbox_instances
from .server import SandboxServer, serve_forever

__all__ = ["SandboxInstance", "SandboxOptions", "SandboxServer", "create_app", "sandbox_instances", "serve_forever"]
