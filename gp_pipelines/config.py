"""The platform config: which Cin7 Core accounts ("instances") to serve, in which currencies.

A YAML file named by `GP_CONFIG`; without it, a built-in config for the local sandbox. The file never holds
secrets: application keys are named by environment variable and read from the environment at run time.
Every error names the file, the field and what is wrong, so a typo is fixed in one look.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_ENV = "GP_CONFIG"
SANDBOX_PORT_ENV = "GP_SANDBOX_PORT"
SANDBOX_SEED_ENV = "GP_SANDBOX_SEED"
SANDBOX_RATE_LIMIT_ENV = "GP_SANDBOX_RATE_LIMIT"
ECB_SANDBOX_URL_ENV = "GP_ECB_SANDBOX_URL"
# JSON of the partners / automation / notifications sections for the running automation sandbox (no secrets).
AUTOMATION_SANDBOX_ENV = "GP_SANDBOX_AUTOMATION"
DEFAULT_ECB_SANDBOX_URL = "http://127.0.0.1:8766/stats/eurofxref/"
CIN7_CALLS_PER_MINUTE = 60
DEFAULT_SANDBOX_PORT = 8765
DEFAULT_SANDBOX_SEED = 42
CIN7_PRODUCTION_URL = "https://inventory.dearsystems.com/ExternalApi/v2/"
INBOUND_READY_RULES = ("stable", "on_arrival")

_INSTANCE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _short_key(value: str) -> str:
    """Instance and partner keys end up in table rows, partition keys and file names: keep them plain."""
    if not _INSTANCE_KEY.match(value):
        raise ValueError("must be lowercase letters, digits or '_', start with a letter, at most 31 characters")
    return value


class ConfigError(ValueError):
    """The config cannot be used; the message says where and why."""


class _Strict(BaseModel):
    # Unknown keys are errors: a misspelt field must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstanceConfig(_Strict):
    key: str = Field(description="Short id used in tables and partition keys, e.g. 'au'")
    name: str = Field(description="Display name shown in the UI and reports")
    account_id: str = Field(description="Cin7 Core Account ID (a GUID; not a secret)")
    application_key_env: list[str] = Field(
        description="Names of environment variables holding this account's API application keys; "
        "calls are spread across them"
    )
    base_url: str = CIN7_PRODUCTION_URL
    base_currency: str | None = Field(
        default=None, description="Expected base currency; checked against GET me when given"
    )
    timezone: str | None = None
    calls_per_minute: int = Field(
        default=CIN7_CALLS_PER_MINUTE - 2,
        ge=1,
        le=100_000,
        description="Budget per application key; stays just under Cin7's 60 a minute. Raise it only for a "
        "sandbox whose limit is raised",
    )

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str) -> str:
        return _short_key(value)

    @field_validator("name")
    @classmethod
    def _name_present(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("account_id")
    @classmethod
    def _account_guid(cls, value: str) -> str:
        if not _GUID.match(value):
            raise ValueError("must be the Account ID GUID shown under Integrations > API in Cin7 Core")
        return value

    @field_validator("application_key_env")
    @classmethod
    def _key_env_names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one environment variable holding an application key")
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not an environment variable name; put the variable's name here, never the key itself"
                )
        if len(set(value)) != len(value):
            raise ValueError("lists the same variable twice")
        return value

    @field_validator("base_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as " + CIN7_PRODUCTION_URL)
        return value if value.endswith("/") else value + "/"

    @field_validator("base_currency")
    @classmethod
    def _currency_shape(cls, value: str | None) -> str | None:
        if value is not None and not _CURRENCY.match(value):
            raise ValueError("must be a three-letter ISO 4217 code such as AUD")
        return value


class FxConfig(_Strict):
    """Where exchange rates come from: the ECB reference rates (default) or a CSV of the company's own."""

    kind: str = "ecb"
    base_url: str | None = Field(default=None, description="ECB feeds folder; default the ECB's own")
    daily_url: str | None = None
    history_90d_url: str | None = None
    history_url: str | None = None
    csv_path: str | None = Field(default=None, description="CSV with date, currency, rate per anchor unit")
    anchor: str = "EUR"

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in ("ecb", "csv"):
            raise ValueError("must be 'ecb' or 'csv'")
        return value

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("must be a three-letter ISO 4217 code such as EUR")
        return value

    @model_validator(mode="after")
    def _csv_needs_path(self) -> FxConfig:
        if self.kind == "csv" and not self.csv_path:
            raise ValueError("kind 'csv' needs csv_path")
        return self


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name; name the variable, never the secret itself")
    return value


# ---------------------------------------------------------------- Zoho Analytics (issue 6)


class ZohoAnalyticsConfig(_Strict):
    """Where and how the analytics views are pushed to Zoho Analytics. Secrets are named by environment variable.

    `accounts_url` and `api_url` must be the hosts of the account's data centre (e.g. accounts.zoho.com.au and
    analyticsapi.zoho.com.au for Australia). Each view becomes table `<table_prefix><view>` plus a standby copy
    `<table_prefix><view>__standby` (see gp_pipelines/warehouse/zoho_export.py)."""

    accounts_url: str = Field(default="https://accounts.zoho.com", description="Accounts host of the data centre")
    api_url: str = Field(default="https://analyticsapi.zoho.com", description="Analytics API host of the data centre")
    org_id: str
    workspace_id: str
    client_id_env: str = "ZOHO_CLIENT_ID"
    client_secret_env: str = "ZOHO_CLIENT_SECRET"
    refresh_token_env: str = "ZOHO_REFRESH_TOKEN"
    daily_unit_budget: int = Field(default=10_000, ge=1, description="API units the exports may spend per day")
    table_prefix: str = Field(default="", description="Put before each view's name to name its Zoho table")
    views: list[str] | None = Field(default=None, description="The analytics views to export; default all of them")
    max_batch_bytes: int = Field(default=50_000_000, ge=10_000, le=100_000_000,
                                 description="Largest CSV batch sent in one request (Zoho allows 100 MB)")
    poll_interval_seconds: float = Field(default=10.0, gt=0, description="Pause between job polls (Zoho: ~10 s)")
    job_timeout_seconds: float = Field(default=1800.0, gt=0, description="Give up on an import/export job after")
    throttle_wait_seconds: float = Field(default=60.0, ge=0, description="Wait before repeating a call refused "
                                         "with 6045 (per-minute limit)")
    sum_tolerance: float = Field(default=0.005, ge=0, description="Largest difference allowed between a sum in "
                                 "Zoho and in the warehouse (half a cent: equal to the cent)")
    export_cron: str | None = Field(default="0 6 * * *", description="When the exports run by themselves (UTC "
                                    "cron); null leaves them to runs started by hand or by a schedule")

    @field_validator("client_id_env", "client_secret_env", "refresh_token_env")
    @classmethod
    def _env_names(cls, value: str) -> str:
        return _env_name(value)  # type: ignore[return-value]

    @field_validator("accounts_url", "api_url")
    @classmethod
    def _host_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("must be the http(s) host of the data centre, such as https://analyticsapi.zoho.com")
        return value.rstrip("/")

    @field_validator("org_id", "workspace_id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not re.match(r"^[0-9]+$", value.strip()):
            raise ValueError("must be the numeric id shown in Zoho Analytics (a number, not a name)")
        return value.strip()

    @field_validator("table_prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_]*$", value):
            raise ValueError("may hold only letters, digits and '_'")
        return value

    @field_validator("views")
    @classmethod
    def _views_listed(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("list at least one view, or leave the field out to export them all")
            if len(set(value)) != len(value):
                raise ValueError("lists the same view twice")
        return value


# ---------------------------------------------------------------- notifications (issue 7)


class EmailNotificationConfig(_Strict):
    smtp_host: str
    smtp_port: int = 587
    sender: str
    recipients: list[str]
    starttls: bool = True
    username_env: str | None = None
    password_env: str | None = None

    @field_validator("username_env", "password_env")
    @classmethod
    def _env_names(cls, value: str | None) -> str | None:
        return _env_name(value)


class WebhookNotificationConfig(_Strict):
    url: str | None = None
    url_env: str | None = Field(default=None, description="Variable holding the URL when it embeds a secret")
    bearer_token_env: str | None = None

    @field_validator("url_env", "bearer_token_env")
    @classmethod
    def _env_names(cls, value: str | None) -> str | None:
        return _env_name(value)

    @model_validator(mode="after")
    def _one_url(self) -> WebhookNotificationConfig:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give exactly one of url or url_env")
        return self


class NotificationsConfig(_Strict):
    email: EmailNotificationConfig | None = None
    webhook: WebhookNotificationConfig | None = None


# ---------------------------------------------------------------- partners: 3PLs and trading partners (7, 8)


class TransportConfig(_Strict):
    """How files travel to and from a partner: SFTP, or folders on a shared disk."""

    kind: str = Field(description="'sftp' or 'folder'")
    host: str | None = None
    port: int = 22
    username_env: str | None = None
    password_env: str | None = None
    known_host_key: str | None = Field(default=None, description="The server's public host key line; pins the host")
    outbound_dir: str = Field(default="in", description="Where we put files for the partner")
    inbound_dir: str = Field(default="out", description="Where the partner puts files for us")
    root: str | None = Field(default=None, description="Folder transport: the shared root folder")
    inbound_ready: str = Field(
        default="stable",
        description="When a partner's file counts as complete: 'stable' (its size and modification time unchanged "
        "across two listings) or 'on_arrival' (the partner uploads under a temporary name and renames when done)",
    )
    inbound_settle_minutes: float = Field(
        default=10, ge=0,
        description="An X12 file that stops before its IEA and changed less than this long ago is taken for one "
        "still being uploaded and read again later; after it, it is quarantined as cut short",
    )

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in ("sftp", "folder"):
            raise ValueError("must be 'sftp' or 'folder'")
        return value

    @field_validator("inbound_ready")
    @classmethod
    def _inbound_ready(cls, value: str) -> str:
        if value not in INBOUND_READY_RULES:
            raise ValueError(f"must be one of {', '.join(INBOUND_READY_RULES)}")
        return value

    @field_validator("username_env", "password_env")
    @classmethod
    def _env_names(cls, value: str | None) -> str | None:
        return _env_name(value)

    @model_validator(mode="after")
    def _complete(self) -> TransportConfig:
        if self.kind == "sftp" and not (self.host and self.username_env):
            raise ValueError("an sftp transport needs host and username_env")
        if self.kind == "folder" and not self.root:
            raise ValueError("a folder transport needs root")
        return self


# Trading partners (issue 8): item, ship-to, price and inventory settings. A 3PL needs none of them.
TRADING_SETS = ("850", "855", "856", "810", "846", "997")
THREEPL_SETS = ("940", "945", "997")
ITEM_MATCH_KINDS = ("upc", "sku", "buyer_part", "vendor_part")
_SCAC = re.compile(r"^[A-Z]{2,4}$")
_MARGIN_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


class MarginConfig(_Strict):
    """A quantity or a percentage of some base: written `5` (an amount) or `"10%"` (a percentage) in YAML, or as
    `{amount: 5, percent: 10}` when both apply (they add up)."""

    amount: float = Field(default=0.0, ge=0)
    percent: float = Field(default=0.0, ge=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("give a number such as 5 or a percentage such as '10%'")
        if isinstance(value, int | float):
            return {"amount": value}
        if isinstance(value, str):
            match = _MARGIN_TEXT.match(value)
            if not match:
                raise ValueError(f"{value!r} is neither a number such as 5 nor a percentage such as '10%'")
            return {"percent" if match.group(2) else "amount": float(match.group(1))}
        return value

    def of(self, base: float) -> float:
        """The margin for a base quantity or price (amount plus percent of the base)."""
        return self.amount + abs(base) * self.percent / 100


class AddressConfig(_Strict):
    """A delivery address in Cin7 Core's shape (sale `ShippingAddress`)."""

    line1: str
    line2: str = ""
    city: str = ""
    state: str = ""
    postcode: str = ""
    country: str = ""


class ShipToConfig(_Strict):
    """Where one of the partner's ship-to codes (850 N1*ST N104: a store or DC number) delivers in Cin7 Core."""

    customer: str | None = Field(default=None, description="Cin7 customer name or ID; default the partner's customer")
    name: str | None = Field(default=None, description="Store or DC name printed on the address")
    address: AddressConfig | None = Field(
        default=None, description="Default: the address on the PO, then the customer's own shipping address"
    )


class InventoryFeedConfig(_Strict):
    """The 846 inventory feed: what is counted and what is held back."""

    per_location: bool = Field(default=False, description="One 846 per Cin7 location instead of one total")
    safety_buffer: MarginConfig = Field(
        default_factory=MarginConfig, description="Held back from each item's available quantity: 5 or '10%'"
    )
    locations: list[str] | None = Field(default=None, description="Cin7 location names counted; default all")
    skus: list[str] | None = Field(default=None, description="The partner's assortment; default every active product")


class PartnerConfig(_Strict):
    """One EDI partner: a 3PL warehouse (940 out, 945 in) or a trading partner (850 in; 855/856/810/846 out)."""

    key: str
    name: str
    kind: str = Field(description="'threepl' or 'trading'")
    instance: str = Field(description="The Cin7 Core instance this partner works with")
    interchange_qualifier: str = "ZZ"
    interchange_id: str = Field(description="The partner's ISA sender/receiver id")
    group_id: str | None = Field(default=None, description="The partner's GS application code; default its ISA id")
    our_qualifier: str = "ZZ"
    our_id: str = "GPPIPELINES"
    our_group_id: str | None = None
    usage: str = Field(default="P", description="ISA15: 'P' production or 'T' test")
    element_separator: str = "*"
    segment_terminator: str = "~"
    component_separator: str = ">"
    transport: TransportConfig
    sets: list[str] = Field(default_factory=list, description="Transaction sets exchanged; default all of the kind's")
    ack_overdue_minutes: float = Field(default=24 * 60, gt=0, description="A 997 later than this is overdue")
    # -- trading partners only ---------------------------------------------------------------------------------
    customer: str | None = Field(default=None, description="Default Cin7 customer (name or ID) for its orders")
    location: str | None = Field(default=None, description="Cin7 location its sales ship from; default the account's")
    item_match: list[str] = Field(
        default_factory=lambda: ["upc", "buyer_part", "vendor_part"],
        description="How PO item ids find Cin7 products, in order: upc (UP/EN/UK -> Barcode), sku (SK -> SKU), "
        "buyer_part (BP/IN -> SKU), vendor_part (VN/VP -> SKU)",
    )
    item_map: dict[str, str] = Field(
        default_factory=dict, description="Exceptions: the partner's item id -> Cin7 SKU (checked first)"
    )
    ship_to: dict[str, ShipToConfig] = Field(default_factory=dict, description="Partner ship-to code -> delivery")
    price_tier: str | None = Field(default=None, description="Cin7 price tier name; default the customer's tier")
    price_tolerance: MarginConfig = Field(
        default_factory=MarginConfig, description="How far a PO price may be from the tier price: 0.05 or '1%'"
    )
    partial_acceptance: bool = Field(
        default=True,
        description="Reject only the bad lines of a PO (True) or the whole PO when any line is bad (False)",
    )
    accepted_uoms: list[str] = Field(default_factory=lambda: ["EA"], description="PO1 units we sell in")
    carrier_scac: dict[str, str] = Field(
        default_factory=lambda: {"UPS": "UPSN", "FedEx": "FDEG", "USPS": "USPS"},
        description="Cin7 carrier name -> SCAC for the 856 TD5",
    )
    gs1_company_prefix: str | None = Field(default=None, description="GS1 company prefix for SSCC-18 carton labels")
    sscc_extension_digit: int = Field(default=0, ge=0, le=9, description="First digit of our SSCC-18s")
    inventory: InventoryFeedConfig = Field(default_factory=InventoryFeedConfig)

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str) -> str:
        return _short_key(value)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in ("threepl", "trading"):
            raise ValueError("must be 'threepl' or 'trading'")
        return value

    @field_validator("usage")
    @classmethod
    def _usage(cls, value: str) -> str:
        if value not in ("P", "T"):
            raise ValueError("must be 'P' (production) or 'T' (test)")
        return value

    @field_validator("sets", mode="before")
    @classmethod
    def _set_ids_as_text(cls, value: Any) -> Any:
        # YAML reads `sets: [850, 855]` as numbers; set ids are codes.
        if isinstance(value, list):
            return [str(item) if isinstance(item, int) and not isinstance(item, bool) else item for item in value]
        return value

    @field_validator("item_match")
    @classmethod
    def _item_match(cls, value: list[str]) -> list[str]:
        unknown = [kind for kind in value if kind not in ITEM_MATCH_KINDS]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; use {', '.join(ITEM_MATCH_KINDS)}")
        return value

    @field_validator("carrier_scac")
    @classmethod
    def _scacs(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {carrier: scac for carrier, scac in value.items() if not _SCAC.match(scac)}
        if bad:
            raise ValueError(f"a SCAC is 2 to 4 capital letters: {bad}")
        return value

    @field_validator("gs1_company_prefix")
    @classmethod
    def _gs1_prefix(cls, value: str | None) -> str | None:
        if value is not None and not (value.isascii() and value.isdigit() and 6 <= len(value) <= 12):
            raise ValueError("must be the 6 to 12 digits GS1 assigned")
        return value

    @field_validator("accepted_uoms")
    @classmethod
    def _uoms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one unit of measure, e.g. EA")
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_sets(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("sets") and data.get("kind") in ("threepl", "trading"):
            return {**data, "sets": list(TRADING_SETS if data["kind"] == "trading" else THREEPL_SETS)}
        return data

    @model_validator(mode="after")
    def _trading_settings(self) -> PartnerConfig:
        allowed = TRADING_SETS if self.kind == "trading" else THREEPL_SETS
        unknown = [set_id for set_id in self.sets if set_id not in allowed]
        if unknown:
            raise ValueError(f"sets: a {self.kind} partner exchanges {', '.join(allowed)}, not {', '.join(unknown)}")
        if self.kind == "trading" and "856" in self.sets and self.gs1_company_prefix is None:
            raise ValueError("gs1_company_prefix: required when the partner receives 856s (SSCC-18 carton labels)")
        return self

    def exchanges(self, set_id: str) -> bool:
        return set_id in self.sets


# ---------------------------------------------------------------- order automation (issue 7)


class LocationRuleConfig(_Strict):
    """How one Cin7 location ships: who runs it, how fast and how dear per region, and whether it may split."""

    instance: str
    location: str = Field(description="The Cin7 Core location name")
    partner: str | None = Field(default=None, description="Key of the 3PL partner running it; none for in-house")
    priority: int = Field(default=100, description="Lower wins a tie")
    transit_days: dict[str, float] = Field(default_factory=lambda: {"*": 3.0})  # region -> days; "*" is the default
    cost: dict[str, float] = Field(default_factory=lambda: {"*": 10.0})  # region -> cost per shipment
    may_split: bool = True


class ShopifyStoreConfig(_Strict):
    key: str
    shop_url: str = Field(description="https://<shop>.myshopify.com, or the sandbox URL")
    access_token_env: str
    api_version: str = "2025-01"
    instance: str = Field(description="The Cin7 Core instance whose sales come from this store")
    source_channel: str = Field(default="Shopify", description="Sales with this SourceChannel belong to the store")

    @field_validator("access_token_env")
    @classmethod
    def _env_names(cls, value: str) -> str:
        return _env_name(value)  # type: ignore[return-value]


class AutomationConfig(_Strict):
    locations: list[LocationRuleConfig] = Field(default_factory=list)
    shopify: list[ShopifyStoreConfig] = Field(default_factory=list)
    retry_base_seconds: float = Field(default=30.0, gt=0, description="First outbox retry delay; doubles each time")
    retry_max_seconds: float = Field(default=1800.0, gt=0)
    give_up_after_minutes: float = Field(default=24 * 60, gt=0, description="Outbox items older than this give up")
    route_orders_since: datetime | None = Field(
        default=None,
        description="The start line: sales ordered before this day are not routed unless an operator asks "
        "(`gp-pipelines orders route --since`). Default: the moment the automation first ran (stored)",
    )
    notify_waiting_after_minutes: float = Field(
        default=24 * 60, gt=0, description="Notify once when a sale has waited for stock (or a person) this long"
    )
    run_lease_minutes: float = Field(
        default=20, gt=0,
        description="How long a routing or partner-file run is trusted with its item; after it, the item is offered "
        "again (keep it above the jobs' dagster/max_runtime)",
    )
    inbox_archive_dir: str | None = Field(default=None, description="Where processed partner files are kept")

    @field_validator("route_orders_since")
    @classmethod
    def _aware_start_line(cls, value: datetime | None) -> datetime | None:
        # A date or time without a zone is read as UTC, like every other time in the platform.
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class CacheConfig(_Strict):
    """How the ERP cache guards itself against odd answers and proves it is complete."""

    max_delete_share: float = Field(
        default=0.2, ge=0, le=1,
        description="A reconcile that would mark more than this share of an entity's live rows deleted refuses, "
        "keeps the rows and fails the entity's completeness check",
    )
    verify_every_days: float = Field(
        default=7, gt=0, description="The rolling verification re-reads every record at least this often"
    )
    clock_skew_minutes: float = Field(
        default=10, ge=0,
        description="A record stamped further ahead of the API's own clock (its Date header) is stored and flagged, "
        "never trusted as the watermark",
    )
    full_read_max_calls: int | None = Field(
        default=None, ge=1,
        description="`--mode full` refuses to start when its estimated calls exceed this (default: no cap beyond the "
        "rate limit)",
    )


class IntegrityConfig(_Strict):
    """The completeness gates in front of the warehouse and every export."""

    completeness_max_age_minutes: float = Field(
        default=26 * 60, gt=0,
        description="A cache entity's passing completeness check (API Total against the cache) must be younger "
        "than this for the warehouse or an export to go ahead",
    )
    max_unknown_share: float = Field(
        default=0.001, ge=0, le=1,
        description="Largest share of fact lines allowed on an unknown dimension member (0 for an instance whose "
        "master data passed its completeness checks)",
    )


class PlatformConfig(_Strict):
    reporting_currency: str = Field(description="The one currency every amount is also reported in")
    instances: list[InstanceConfig]
    fx: FxConfig = Field(default_factory=FxConfig)
    partners: list[PartnerConfig] = Field(default_factory=list)
    zoho_analytics: ZohoAnalyticsConfig | None = None
    notifications: NotificationsConfig | None = None
    automation: AutomationConfig = Field(default_factory=AutomationConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    integrity: IntegrityConfig = Field(default_factory=IntegrityConfig)
    source: str = Field(default="<built-in sandbox config>", exclude=True)

    @field_validator("reporting_currency")
    @classmethod
    def _currency_shape(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("must be a three-letter ISO 4217 code such as USD")
        return value

    @model_validator(mode="after")
    def _unique_instances(self) -> PlatformConfig:
        if not self.instances:
            raise ValueError("instances: list at least one Cin7 Core instance")
        seen: set[str] = set()
        for instance in self.instances:
            if instance.key in seen:
                raise ValueError(f"instances: key {instance.key!r} is used twice")
            seen.add(instance.key)
        partner_keys = [partner.key for partner in self.partners]
        for index, partner in enumerate(self.partners):
            if partner.key in partner_keys[:index]:
                raise ValueError(f"partners: key {partner.key!r} is used twice")
            if partner.instance not in seen:
                raise ValueError(f"partners[{index}] ({partner.key!r}): unknown instance {partner.instance!r}")
        for index, rule in enumerate(self.automation.locations):
            if rule.instance not in seen:
                raise ValueError(f"automation.locations[{index}]: instance {rule.instance!r} is not configured")
            if rule.partner is not None and rule.partner not in partner_keys:
                raise ValueError(f"automation.locations[{index}]: partner {rule.partner!r} is not configured")
        for index, store in enumerate(self.automation.shopify):
            if store.instance not in seen:
                raise ValueError(f"automation.shopify[{index}]: instance {store.instance!r} is not configured")
        return self

    def partner(self, key: str) -> PartnerConfig:
        for partner in self.partners:
            if partner.key == key:
                return partner
        raise ConfigError(f"{self.source}: no partner with key {key!r}")

    @property
    def instance_keys(self) -> list[str]:
        return [instance.key for instance in self.instances]

    def instance(self, key: str) -> InstanceConfig:
        for instance in self.instances:
            if instance.key == key:
                return instance
        raise ConfigError(f"{self.source}: no instance with key {key!r} (known: {', '.join(self.instance_keys)})")

    def missing_key_variables(self) -> list[str]:
        """Environment variables the config names that are not set (empty counts as not set)."""
        return [
            name for instance in self.instances for name in instance.application_key_env if not os.environ.get(name)
        ]


def _field_path(location: tuple[Any, ...], data: Any) -> str:
    """Turn a pydantic location like ('instances', 1, 'account_id') into `instances[1] (key 'nz').account_id`."""
    parts: list[str] = []
    node = data
    for item in location:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                key = node[item].get("key")
                if key:
                    label += f" (key {key!r})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
        node = node[item] if isinstance(node, (list, dict)) and _has(node, item) else None
    return "".join(parts) or "(top level)"


def _has(node: Any, item: Any) -> bool:
    if isinstance(node, dict):
        return item in node
    return isinstance(item, int) and item < len(node)


def parse_config(data: Any, source: str) -> PlatformConfig:
    """Validate an already-parsed YAML document; `source` names it in error messages."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the file must hold a mapping with 'reporting_currency' and 'instances'")
    try:
        return PlatformConfig.model_validate({**data, "source": source})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field (check the spelling)"
            elif error["type"] == "missing":
                message = "required field is missing"
            lines.append(f"  {_field_path(tuple(error['loc']), data)}: {message}")
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(lines)) from None


def load_config_file(path: str | Path) -> PlatformConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (set {CONFIG_ENV} to an existing file)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_config(data, str(path))


def sandbox_key_variable(instance_key: str, index: int) -> str:
    """Environment variable that holds the sandbox's application key number `index` (1-based)."""
    return f"GP_SANDBOX_{instance_key.upper()}_KEY_{index}"


def builtin_sandbox_config(
    port: int | None = None, seed: int | None = None, rate_limit: int | None = None
) -> PlatformConfig:
    """The config used when GP_CONFIG is not set: the three sandbox instances au, nz and us.

    `rate_limit` is the sandbox's calls per minute per key (GP_SANDBOX_RATE_LIMIT; Cin7's 60 by default);
    the platform budgets two below it, as it does against the real API."""
    # Imported here: the sandbox stands beside the product and only the default config needs it.
    from gp_pipelines.sandbox.cin7 import sandbox_instances

    port = port or int(os.environ.get(SANDBOX_PORT_ENV, DEFAULT_SANDBOX_PORT))
    if seed is None:
        seed = int(os.environ.get(SANDBOX_SEED_ENV, DEFAULT_SANDBOX_SEED))
    if rate_limit is None:
        rate_limit = int(os.environ.get(SANDBOX_RATE_LIMIT_ENV, CIN7_CALLS_PER_MINUTE))
    base_url = f"http://127.0.0.1:{port}/ExternalApi/v2/"
    instances = [
        {
            "key": inst.key,
            "name": inst.company,
            "account_id": inst.account_id,
            "application_key_env": [sandbox_key_variable(inst.key, i + 1) for i in range(len(inst.application_keys))],
            "base_url": base_url,
            "base_currency": inst.currency,
            "timezone": inst.timezone,
            "calls_per_minute": max(1, rate_limit - 2),
        }
        for inst in sandbox_instances(seed)
    ]
    fx = {"kind": "ecb", "base_url": os.environ.get(ECB_SANDBOX_URL_ENV, DEFAULT_ECB_SANDBOX_URL)}
    document: dict[str, Any] = {"reporting_currency": "USD", "instances": instances, "fx": fx}
    from gp_pipelines.sandbox.zoho.server import ZOHO_SANDBOX_URL_ENV, sandbox_zoho_section

    zoho_url = os.environ.get(ZOHO_SANDBOX_URL_ENV)
    if zoho_url:  # a running Zoho Analytics sandbox: export to it
        document["zoho_analytics"] = sandbox_zoho_section(zoho_url, seed)
    automation = os.environ.get(AUTOMATION_SANDBOX_ENV)
    if automation:  # running 3PL, SFTP, Shopify and mail stand-ins: their partners, rules and notifications
        document.update(json.loads(automation))
    return parse_config(document, "<built-in sandbox config>")


def load_config() -> PlatformConfig:
    """The config in force: the file in GP_CONFIG, else the built-in sandbox config."""
    path = os.environ.get(CONFIG_ENV)
    if path:
        return load_config_file(path)
    return builtin_sandbox_config()


def config_to_yaml(config: PlatformConfig) -> str:
    return yaml.safe_dump(config.model_dump(exclude_none=True, exclude_defaults=False), sort_keys=False)
