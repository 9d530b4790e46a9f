"""The outside world of order automation on one machine: an SFTP server, a 3PL warehouse per instance behind
it, a Shopify store, and SMTP / webhook receivers for notifications.

`AutomationSandbox` starts them, and says how the platform reaches them: `config_sections()` (partners, location
rules, Shopify stores, notifications; no secrets) and `environment()` (the SFTP login and the Shopify token the
config names). `mirror_shopify_orders` creates, in the Shopify sandbox, the web orders that Cin7 sales with
`SourceChannel: Shopify` came from, so tracking has somewhere to go.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Self

from gp_pipelines.sandbox.notify import SmtpCaptureServer, WebhookCaptureServer
from gp_pipelines.sandbox.partner import PartnerSandbox
from gp_pipelines.sandbox.sftp import SftpSandboxServer
from gp_pipelines.sandbox.shopify import ShopifySandboxOptions, ShopifySandboxServer
from gp_pipelines.sandbox.threaded import StartStop
from gp_pipelines.sandbox.threepl import ThreePLOptions, ThreePLWarehouse

SFTP_USER_ENV = "GP_SANDBOX_SFTP_USER"
SFTP_PASSWORD_ENV = "GP_SANDBOX_SFTP_PASSWORD"
SHOPIFY_TOKEN_ENV = "GP_SANDBOX_SHOPIFY_TOKEN_{}"  # one web store per instance, each with its own token
OUR_EDI_ID = "GPPIPELINES"
RETAILER_ID = "RETAILSBX"
RETAILER_KEY = "sandbox_retail"
RETAILER_GS1_PREFIX = "0614141"  # GS1's own example company prefix

# Per instance: its 3PL partner and the location that partner runs, plus the in-house locations, with how fast
# and how dear each ships to which region (the sandbox generator's location names and ship-to states).
SANDBOX_ROUTING: dict[str, dict[str, Any]] = {
    "au": {"partner": ("acme_3pl", "Acme Logistics (Melbourne)"), "rules": [
        {"location": "Main Warehouse", "priority": 10, "transit_days": {"*": 3, "NSW": 1}, "cost": {"*": 9}},
        {"location": "Melbourne 3PL", "run_by_3pl": True, "priority": 20, "transit_days": {"*": 2, "VIC": 1},
         "cost": {"*": 7}},
        {"location": "Brisbane Store", "priority": 50, "transit_days": {"*": 4, "QLD": 1}, "cost": {"*": 12},
         "may_split": False},
    ]},
    "nz": {"partner": ("kiwi_3pl", "Kiwi Fulfilment (Christchurch)"), "rules": [
        {"location": "Auckland Warehouse", "priority": 10, "transit_days": {"*": 2, "Auckland": 1}, "cost": {"*": 8}},
        {"location": "Christchurch 3PL", "run_by_3pl": True, "priority": 20, "transit_days": {"*": 2, "Canterbury": 1},
         "cost": {"*": 6}},
        {"location": "Wellington Store", "priority": 50, "transit_days": {"*": 3, "Wellington": 1},
         "cost": {"*": 11}, "may_split": False},
    ]},
    "us": {"partner": ("west_3pl", "Westward 3PL (Los Angeles)"), "rules": [
        {"location": "East Coast DC", "priority": 10, "transit_days": {"*": 4, "NY": 1, "NJ": 1}, "cost": {"*": 10}},
        {"location": "West Coast 3PL", "run_by_3pl": True, "priority": 20, "transit_days": {"*": 4, "CA": 1},
         "cost": {"*": 8}},
        {"location": "New York Store", "priority": 50, "transit_days": {"*": 5, "NY": 1}, "cost": {"*": 14},
         "may_split": False},
    ]},
}  # fmt: skip


class AutomationSandbox(StartStop):
    """Start with `with AutomationSandbox(root) as sandbox:`; everything listens on 127.0.0.1."""

    def __init__(self, root: str | Path, *, instances: tuple[str, ...] = ("au", "nz", "us"), seed: int = 42,
                 threepl: ThreePLOptions | None = None, sftp_port: int = 0,
                 retailer: dict[str, Any] | None = None) -> None:
        """`retailer`, when given, adds a trading partner: a retailer sandbox exchanging files through a folder,
        with its trading settings (`instance`, `customer`, optionally `location`, `price_tier`)."""
        self.root = Path(root)
        self.instances = tuple(key for key in instances if key in SANDBOX_ROUTING)
        self.seed = seed
        self.threepl_options = threepl or ThreePLOptions(seed=seed, ship_delay_seconds=60, partial_rate=0.25,
                                                         short_rate=0.1)
        self.username = "gp-sandbox"
        self.password = secrets.token_urlsafe(12)
        self.sftp = SftpSandboxServer(self.root / "sftp", self.username, self.password, port=sftp_port)
        self.shopify = ShopifySandboxServer(ShopifySandboxOptions(
            shops={self.shop(key): secrets.token_hex(16) for key in self.instances}, seed=seed, leak_per_second=40.0))
        self.smtp = SmtpCaptureServer()
        self.webhook = WebhookCaptureServer()
        self.warehouses: dict[str, ThreePLWarehouse] = {}
        self.retailer_settings = dict(retailer or {})
        self.retailer = PartnerSandbox(self.root / "retailer", RETAILER_ID, OUR_EDI_ID, seed=seed,
                                       name="Sandbox Retail") if retailer else None

    @staticmethod
    def shop(instance: str) -> str:
        return f"gp-sandbox-{instance}"

    def partner_key(self, instance: str) -> str:
        return SANDBOX_ROUTING[instance]["partner"][0]

    def start(self) -> Self:
        (self.root / "sftp").mkdir(parents=True, exist_ok=True)
        self.sftp.start()
        self.shopify.start()
        self.smtp.start()
        self.webhook.start()
        for instance in self.instances:
            key = self.partner_key(instance)
            self.warehouses[key] = ThreePLWarehouse(
                self.root / "sftp" / key, warehouse_id=key.upper().replace("_", ""), depositor_id=OUR_EDI_ID,
                options=self.threepl_options, usage="T",
            )
        return self

    def stop(self) -> None:
        for warehouse in self.warehouses.values():
            warehouse.stop()
        for server in (self.webhook, self.smtp, self.shopify, self.sftp):
            server.stop()


    def process_warehouses(self, advance_seconds: float = 0.0) -> int:
        """Let every 3PL read its inbox and send what is due (after moving its clock on); returns 945s sent."""
        sent = 0
        for warehouse in self.warehouses.values():
            if advance_seconds:
                warehouse.advance(advance_seconds)
            sent += warehouse.process_once().shipments_sent
        return sent

    def environment(self) -> dict[str, str]:
        tokens = {SHOPIFY_TOKEN_ENV.format(key.upper()): self.shopify.token(self.shop(key)) for key in self.instances}
        return {SFTP_USER_ENV: self.username, SFTP_PASSWORD_ENV: self.password, **tokens}

    def config_sections(self) -> dict[str, Any]:
        """The partners, automation and notifications sections of a platform config for this sandbox."""
        partners = []
        locations = []
        for instance in self.instances:
            key, name = SANDBOX_ROUTING[instance]["partner"]
            partners.append({
                "key": key, "name": name, "kind": "threepl", "instance": instance,
                "interchange_id": key.upper().replace("_", ""), "our_id": OUR_EDI_ID, "usage": "T",
                "ack_overdue_minutes": 60,
                "transport": {"kind": "sftp", "host": "127.0.0.1", "port": self.sftp.port,
                              "username_env": SFTP_USER_ENV, "password_env": SFTP_PASSWORD_ENV,
                              "known_host_key": self.sftp.host_key_line,
                              "outbound_dir": f"{key}/in", "inbound_dir": f"{key}/out"},
            })  # fmt: skip
            for rule in SANDBOX_ROUTING[instance]["rules"]:
                rule = dict(rule)
                partner = key if rule.pop("run_by_3pl", False) else None
                locations.append({"instance": instance, "partner": partner, **rule})
        if self.retailer is not None:
            settings = dict(self.retailer_settings)
            instance = settings.pop("instance")
            partners.append(self.retailer.partner_entry(
                RETAILER_KEY, instance, gs1_company_prefix=RETAILER_GS1_PREFIX, ack_overdue_minutes=60, **settings))
        shopify = [{"key": f"shop_{instance}", "shop_url": self.shopify.shop_url(self.shop(instance)),
                    "access_token_env": SHOPIFY_TOKEN_ENV.format(instance.upper()), "instance": instance,
                    "source_channel": "Shopify"}
                   for instance in self.instances]  # fmt: skip
        return {
            "partners": partners,
            "automation": {"locations": locations, "shopify": shopify, "retry_base_seconds": 5,
                           "retry_max_seconds": 60, "give_up_after_minutes": 30},
            "notifications": {
                "email": {"smtp_host": "127.0.0.1", "smtp_port": self.smtp.port, "sender": "gp@sandbox.test",
                          "recipients": ["ops@sandbox.test"], "starttls": False},
                "webhook": {"url": self.webhook.url},
            },
        }  # fmt: skip


def mirror_shopify_orders(shopify: ShopifySandboxServer, sales: list[dict[str, Any]], shop: str) -> list[str]:
    """Create the Shopify orders that these Cin7 sales (full documents) came from; returns the order names.

    Only sales with `SourceChannel: Shopify` and an `ExternalID` have one; names already present are skipped."""
    existing = {order["name"] for order in shopify.orders(shop)}
    created = []
    for sale in sales:
        name = str(sale.get("ExternalID") or "")
        if sale.get("SourceChannel") != "Shopify" or not name or name in existing:
            continue
        lines = [{"sku": line["SKU"], "quantity": int(max(1, round(float(line["Quantity"]))))}
                 for line in (sale.get("Order") or {}).get("Lines") or []]
        if lines:
            shopify.create_order(lines, shop=shop, name=name)
            existing.add(name)
            created.append(name)
    return created
