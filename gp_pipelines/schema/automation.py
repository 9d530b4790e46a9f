"""Schema `automation` (DESIGN.md §3, §6): the outbox, audit log and notifications; the durable state of sales,
fulfilments, shipments and partner files with its history; EDI files, interchanges and control numbers; partner
orders and documents; the relocation journal. The state lists the CHECK constraints name live here, and the
modules that move rows between states import them from here."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, TEXT

from gp_pipelines.schema.model import (
    AUTOMATION_SCHEMA,
    EMPTY_ARRAY,
    EMPTY_OBJECT,
    bigint_col,
    bool_col,
    in_list,
    int_col,
    json_col,
    metadata,
    serial_pk,
    stamp_col,
    text_col,
    ts_col,
)

OUTBOX_STATES = ("pending", "running", "failed", "done", "given_up")
SALE_STATES = (
    "new",  # admitted (after the start line, or by an operator); routing comes next
    "waiting_for_stock",  # nothing could be planned: offered again when the cache shows stock for it
    "held",  # needs a person (no location rules, fulfilled by hand in Cin7 Core); offered again when it changes
    "planned",  # fulfilments written down; their Cin7 tasks are being created
    "fulfilments_created",  # every Cin7 fulfilment task exists; 940s to the 3PLs come next
    "sent_to_3pl",  # every 940 delivered
    "acknowledged",  # every 940 accepted by the 3PL's 997
    "partially_shipped",  # some of it shipped in Cin7 Core
    "shipped",  # every fulfilment shipped in Cin7 Core; tracking to the web store comes next
    "done",  # shipped, tracking posted where the sale came from a store, nothing backordered
    "given_up",  # an outside action for it was given up: an operator requeues it once the cause is fixed
    "cancelled",  # voided or credited in Cin7 Core before we acted
)
FULFILMENT_STATES = (
    "planned", "created", "sent", "acknowledged", "partially_shipped", "shipped", "short_shipped", "handed_over",
    "done", "given_up", "cancelled",
)  # fmt: skip
SHIPMENT_STATES = ("recorded", "shipped_in_cin7", "tracking_posted", "no_tracking_needed", "given_up")
FILE_STATES = (
    "taken",  # a run holds it (lease_until)
    "failed",  # the run failed on an outside system: offered again at next_attempt_at
    "incomplete",  # it changed while we read it: the partner is still writing; a later listing brings it back
    "processed",  # validated, acknowledged, its documents applied
    "duplicate",  # every document in it had been applied before (a re-delivery): acknowledged, nothing done
    "quarantined",  # not X12, invalid, or about something we never sent: kept with the reason, notified
    "unreadable",  # could not be fetched (e.g. permission denied): reported, offered again when it changes
    "dismissed",  # an operator looked at a quarantined or unreadable file and set it aside
    "superseded",  # the partner changed the file before it was processed (or readable): its later listing took over
)
# States that need nobody: a sale, file or shipment in one of these is finished.
SALE_FINAL = ("done", "cancelled")
FILE_FINAL = ("processed", "duplicate", "dismissed", "superseded")
EDI_FILE_STATES = ("received", "processed", "quarantined", "sent")
INTERCHANGE_STATES = ("awaiting_ack", "accepted", "accepted_with_errors", "partially_accepted", "rejected",
                      "received", "no_ack_expected")
CONTROL_NUMBER_KINDS = ("ISA", "GS", "ST")
PARTNER_ORDER_STATES = ("pending", "created", "acknowledged", "rejected", "adopted")
OUTBOUND_SETS = ("855", "856", "810", "846")
RELOCATION_STATES = ("running", "failed", "done")

A = AUTOMATION_SCHEMA
EMPTY_TEXT = text("''")
EMPTY_TEXT_ARRAY = text("'{}'::text[]")


def _check(table: str, column: str, values: tuple[str, ...]) -> CheckConstraint:
    # Named as PostgreSQL names an inline CHECK, so tables made before migrations match.
    return CheckConstraint(in_list(column, values), name=f"{table}_{column}_check")


def _direction(table: str) -> CheckConstraint:
    return _check(table, "direction", ("in", "out"))


def _text_array(name: str) -> Column:
    return Column(name, ARRAY(TEXT), nullable=False, server_default=EMPTY_TEXT_ARRAY)


# -- outbox, audit log, notifications ---------------------------------------------------------------------------

outbox = Table(
    "outbox", metadata,
    serial_pk(),
    text_col("key", null=False, unique=True),
    text_col("kind", null=False),  # which handler performs it (e.g. 'send_940', 'ship_sale')
    text_col("instance"),  # the Cin7 Core instance it concerns, when there is one
    text_col("subject"),  # what it is about (e.g. the sale id), for grouping and the UI
    json_col("payload", null=False, default=EMPTY_OBJECT),
    text_col("state", null=False, server_default=text("'pending'")),
    int_col("attempts", null=False, default=0),  # times started (a crashed attempt counts too)
    stamp_col("created_at"),
    stamp_col("updated_at"),
    stamp_col("next_attempt_at"),
    ts_col("lease_until"),  # set while running: after it, the worker is presumed dead
    text_col("last_error"),
    json_col("result"),  # what the outside system answered (ids, tracking numbers)
    ts_col("done_at"),
    ts_col("requeued_at"),  # an operator retried it: the give-up window restarts here
    _check("outbox", "state", OUTBOX_STATES),
    Index("outbox_due_idx", "next_attempt_at", postgresql_where=text("state IN ('pending', 'failed')")),
    Index("outbox_lease_idx", "lease_until", postgresql_where=text("state = 'running'")),
    Index("outbox_subject_idx", "instance", "subject"),
    Index("outbox_given_up_idx", "id", postgresql_where=text("state = 'given_up'")),
    schema=A,
)

audit_log = Table(
    "audit_log", metadata,
    serial_pk(),
    stamp_col("at"),
    text_col("actor"),  # Dagster run id, sensor name or user
    text_col("instance"),
    text_col("subject"),
    text_col("action", null=False),  # e.g. 'outbox.enqueued', 'outbox.done', 'routing.planned'
    text_col("outbox_key"),
    json_col("detail", null=False, default=EMPTY_OBJECT),
    Index("audit_log_subject_idx", "instance", "subject", "at"),
    Index("audit_log_outbox_key_idx", "outbox_key", postgresql_where=text("outbox_key IS NOT NULL")),
    schema=A,
)

notifications = Table(
    "notifications", metadata,
    serial_pk(),
    text_col("key", null=False, unique=True),
    stamp_col("created_at"),
    text_col("subject", null=False),
    text_col("body", null=False),
    _text_array("channels"),  # the channels that delivered it
    ts_col("sent_at"),  # set once handled (delivered, or recorded with no channel)
    text_col("error"),  # per channel, when a channel failed after its retries
    int_col("attempts", null=False, default=0),
    ts_col("attempted_at"),
    schema=A,
)

# -- durable state (automation/state.py) ------------------------------------------------------------------------

sales = Table(
    "sales", metadata,
    text_col("instance", null=False),
    text_col("sale_id", null=False),
    text_col("order_number", null=False, server_default=EMPTY_TEXT),
    Column("order_date", Date),
    text_col("sale_updated", null=False, server_default=EMPTY_TEXT),  # the sale's LastModifiedOn when last read
    text_col("state", null=False),
    text_col("reason"),
    json_col("plan"),  # the latest routing plan
    json_col("snapshot"),  # what later steps need from the sale (940 parties, lines)
    text_col("store_key"),  # the web store the sale came from, if any
    text_col("store_order_id"),  # and its order there (the sale's ExternalID)
    json_col("backordered", null=False, default=EMPTY_ARRAY),  # lines no fulfilment covers yet
    int_col("rounds", null=False, default=0),  # routing rounds that planned fulfilments
    text_col("admitted_by", null=False),  # 'start_line' or 'operator:<who>'
    int_col("attempts", null=False, default=0),  # routing offers taken by runs
    stamp_col("next_attempt_at"),
    ts_col("lease_until"),  # a routing run holds the sale until then
    text_col("last_error"),
    ts_col("stock_checked_at"),  # when routing last looked at the cache's stock for it
    ts_col("waiting_since"),
    ts_col("waiting_notified_at"),
    stamp_col("created_at"),
    stamp_col("updated_at"),
    PrimaryKeyConstraint("instance", "sale_id"),
    _check("sales", "state", SALE_STATES),
    Index("sales_open", "state", postgresql_where=text(in_list("state", SALE_FINAL, negate=True))),
    schema=A,
)

fulfilments = Table(
    "fulfilments", metadata,
    text_col("instance", null=False),
    text_col("sale_id", null=False),
    int_col("seq", null=False),
    text_col("location", null=False),
    text_col("partner"),
    text_col("depositor_order", null=False),  # our 940's W0502: unique per instance (a partner serves one)
    text_col("task_id"),
    bigint_col("edi_file_id"),
    json_col("lines", null=False),
    text_col("state", null=False),
    json_col("shipments", null=False, default=EMPTY_ARRAY),  # before automation.shipments existed
    stamp_col("created_at"),
    stamp_col("updated_at"),
    int_col("round", null=False, default=1),  # added after the first release: last, as upgraded tables have it
    PrimaryKeyConstraint("instance", "sale_id", "seq"),
    _check("fulfilments", "state", FULFILMENT_STATES),
    # Order numbers repeat across Cin7 accounts: the depositor order is unique per instance, not overall.
    Index("fulfilments_depositor_order", "instance", "depositor_order", unique=True),
    Index("fulfilments_open", "instance", "location",
          postgresql_where=text("state IN ('planned', 'created', 'sent')")),
    schema=A,
)

shipments = Table(
    "shipments", metadata,
    serial_pk(),
    text_col("instance", null=False),
    text_col("sale_id", null=False),
    int_col("seq", null=False),
    text_col("shipment_key", null=False, unique=True),  # the fulfilment and the shipment's content, hashed
    text_col("partner"),
    bigint_col("file_id"),  # the file that first reported it
    text_col("ship_date", null=False, server_default=EMPTY_TEXT),
    text_col("carrier", null=False, server_default=EMPTY_TEXT),
    text_col("tracking_number", null=False, server_default=EMPTY_TEXT),
    text_col("tracking_url", null=False, server_default=EMPTY_TEXT),
    json_col("lines", null=False),  # SKU -> quantity shipped in this shipment
    bool_col("final", null=False, default=False),  # the 3PL says nothing more follows (a short-ship)
    text_col("state", null=False),
    text_col("reason"),
    stamp_col("created_at"),
    stamp_col("updated_at"),
    _check("shipments", "state", SHIPMENT_STATES),
    ForeignKeyConstraint(["instance", "sale_id", "seq"],
                         [f"{A}.fulfilments.instance", f"{A}.fulfilments.sale_id", f"{A}.fulfilments.seq"]),
    Index("shipments_fulfilment", "instance", "sale_id", "seq", "id"),
    schema=A,
)

inbound_files = Table(
    "inbound_files", metadata,
    serial_pk(),
    text_col("partner", null=False),
    text_col("name", null=False),  # the name as a token that round-trips to the exact bytes
    text_col("display_name", null=False),
    bigint_col("listed_size", null=False),
    ts_col("listed_modified", null=False),
    text_col("state", null=False),
    text_col("reason"),
    int_col("attempts", null=False, default=0),
    stamp_col("next_attempt_at"),
    ts_col("lease_until"),
    text_col("last_error"),
    bigint_col("file_id"),  # automation.edi_files, once stored
    text_col("content_hash"),
    ts_col("archived_at"),  # moved out of the partner's inbox
    ts_col("notified_at"),
    stamp_col("created_at"),
    stamp_col("updated_at"),
    UniqueConstraint("partner", "name", "listed_size", "listed_modified"),
    _check("inbound_files", "state", FILE_STATES),
    Index("inbound_files_open", "partner", "state",
          postgresql_where=text(f"{in_list('state', FILE_FINAL, negate=True)} OR archived_at IS NULL")),
    schema=A,
)

state_history = Table(
    "state_history", metadata,
    serial_pk(),
    ts_col("at", null=False, server_default=text("clock_timestamp()")),
    text_col("kind", null=False),
    text_col("instance"),
    text_col("subject", null=False),
    text_col("from_state"),
    text_col("to_state", null=False),
    text_col("cause", null=False),
    text_col("actor"),
    Index("state_history_subject", "kind", "instance", "subject", "id"),
    schema=A,
)

settings = Table(
    "settings", metadata,
    text_col("key", null=False, primary_key=True),
    json_col("value", null=False),
    stamp_col("set_at"),
    text_col("set_by"),
    schema=A,
)

# -- EDI exchange (automation/exchange.py, edi/control_numbers.py) ----------------------------------------------

edi_files = Table(
    "edi_files", metadata,
    serial_pk(),
    text_col("partner", null=False),
    text_col("direction", null=False),
    text_col("file_name", null=False),
    text_col("content_hash", null=False),
    Column("content", LargeBinary),  # files stored before parts existed keep their content here
    text_col("state", null=False),
    text_col("reason"),
    stamp_col("created_at"),
    stamp_col("updated_at"),
    bigint_col("size"),
    UniqueConstraint("partner", "direction", "file_name", "content_hash"),
    _direction("edi_files"),
    _check("edi_files", "state", EDI_FILE_STATES),
    schema=A,
)

# A file is kept in parts, so a large one is written and read a part at a time, never whole in memory.
edi_file_parts = Table(
    "edi_file_parts", metadata,
    bigint_col("file_id", null=False),
    Column("part", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("file_id", "part"),
    ForeignKeyConstraint(["file_id"], [f"{A}.edi_files.id"]),
    schema=A,
)

edi_interchanges = Table(
    "edi_interchanges", metadata,
    serial_pk(),
    text_col("partner", null=False),
    text_col("direction", null=False),
    bigint_col("file_id"),
    text_col("interchange_control", null=False),
    text_col("group_control", null=False),
    text_col("functional_id", null=False),
    _text_array("set_ids"),
    int_col("set_count", null=False, default=0),
    text_col("state", null=False),
    stamp_col("created_at"),
    ts_col("ack_due_at"),
    ts_col("acked_at"),
    json_col("ack_detail"),
    ts_col("overdue_notified_at"),
    UniqueConstraint("partner", "direction", "interchange_control", "group_control"),
    ForeignKeyConstraint(["file_id"], [f"{A}.edi_files.id"]),
    _direction("edi_interchanges"),
    _check("edi_interchanges", "state", INTERCHANGE_STATES),
    Index("edi_interchanges_awaiting", "ack_due_at", postgresql_where=text("state = 'awaiting_ack'")),
    schema=A,
)

edi_control_numbers = Table(
    "edi_control_numbers", metadata,
    text_col("partner_id", null=False),
    text_col("kind", null=False),
    Column("last_value", BigInteger, nullable=False),
    stamp_col("updated_at"),
    PrimaryKeyConstraint("partner_id", "kind"),
    _check("edi_control_numbers", "kind", CONTROL_NUMBER_KINDS),
    CheckConstraint("last_value BETWEEN 1 AND 999999999", name="edi_control_numbers_last_value_check"),
    schema=A,
)

# -- trading partners (automation/partner_flows.py) -------------------------------------------------------------

partner_orders = Table(
    "partner_orders", metadata,
    text_col("partner", null=False),
    text_col("po_number", null=False),
    text_col("instance", null=False),
    text_col("sale_id"),
    text_col("sale_order_number"),
    text_col("state", null=False),
    json_col("decisions", null=False, default=EMPTY_ARRAY),
    json_col("problems", null=False, default=EMPTY_ARRAY),
    bigint_col("file_id"),
    stamp_col("created_at"),
    stamp_col("updated_at"),
    PrimaryKeyConstraint("partner", "po_number"),
    ForeignKeyConstraint(["file_id"], [f"{A}.edi_files.id"]),
    _check("partner_orders", "state", PARTNER_ORDER_STATES),
    Index("partner_orders_sale", "instance", "sale_id"),
    schema=A,
)

partner_documents = Table(
    "partner_documents", metadata,
    text_col("partner", null=False),
    text_col("set_id", null=False),
    text_col("reference", null=False),
    text_col("instance"),
    text_col("sale_id"),
    text_col("po_number"),
    bigint_col("file_id"),
    text_col("outbox_key"),
    text_col("state", null=False),
    text_col("reason"),
    json_col("detail", null=False, default=EMPTY_OBJECT),
    stamp_col("created_at"),
    stamp_col("updated_at"),
    PrimaryKeyConstraint("partner", "set_id", "reference"),
    ForeignKeyConstraint(["file_id"], [f"{A}.edi_files.id"]),
    _check("partner_documents", "set_id", OUTBOUND_SETS),
    _check("partner_documents", "state", ("queued", "failed")),
    schema=A,
)

sscc_serials = Table(
    "sscc_serials", metadata,
    text_col("company_prefix", null=False),
    int_col("extension_digit", null=False),
    bigint_col("last_serial", null=False),
    PrimaryKeyConstraint("company_prefix", "extension_digit"),
    schema=A,
)

# -- the relocation journal (automation/relocate.py) ------------------------------------------------------------

relocations = Table(
    "relocations", metadata,
    text_col("instance", null=False),
    text_col("sale_id", null=False),  # lower case, as the order lock names it
    text_col("target_location", null=False),  # the location's name as Cin7 Core spells it
    text_col("target_location_id", null=False),
    text_col("source_location", null=False),
    text_col("order_number", null=False, server_default=EMPTY_TEXT),
    text_col("state", null=False),
    Column("plan_steps", ARRAY(TEXT), nullable=False),  # the steps this sale needs, in order
    _text_array("steps_done"),
    json_col("snapshot", null=False),  # {"sale": the document, "payments": the sale/payment rows}
    json_col("details", null=False, default=EMPTY_OBJECT),  # per step: what it did (ids, invoice map)
    int_col("runs", null=False, default=1),  # runs that worked on this row (a resume counts)
    text_col("last_error"),
    stamp_col("started_at"),
    stamp_col("updated_at"),
    ts_col("finished_at"),
    PrimaryKeyConstraint("instance", "sale_id", "target_location"),
    _check("relocations", "state", RELOCATION_STATES),
    Index("relocations_open", "instance", "sale_id", postgresql_where=text("state <> 'done'")),
    schema=A,
)
