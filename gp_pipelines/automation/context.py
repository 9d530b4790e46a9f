"""What the automation's steps need from the outside world, in one object: Cin7 Core clients per instance,
transports per partner, Shopify clients per store, the retry policy and the notifier.

The Dagster resource (`resources/automation.py`) builds one per run; tests and the demo build their own. Nothing
here talks to anything by itself: the clients open on first use and whoever built the context closes them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gp_pipelines.automation import outbox
from gp_pipelines.automation.outbox import RetryPolicy
from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.config import PlatformConfig
from gp_pipelines.connectors.notify import Notifier
from gp_pipelines.connectors.transport import Transport, transport_for


@dataclass
class AutomationContext:
    config: PlatformConfig
    database_url: str
    cin7: Callable[[str], Cin7Client]
    transport: Callable[[str], Transport]
    policy: outbox.RetryPolicy
    notifier: outbox.OutboxNotifier | None = None
    actor: str = "gp-pipelines"
    lock_wait_seconds: float = 30.0
    shopify: Callable[[str], Any] | None = None
    # Set handlers by X12 set id for documents other than 945s and 997s (trading partners register 850 here):
    # `handler(conn, context, partner, document, file_id) -> list[str]` (what its outbox items did), with an
    # optional `precheck(conn, partner, document)` attribute that raises `UnmatchedDocument` before anything acts.
    extra_handlers: dict[str, Any] = field(default_factory=dict)
    # How long an outside action is trusted to its worker: above every call's overall deadline.
    outbox_lease_seconds: float = outbox.DEFAULT_LEASE_SECONDS

    @property
    def run_lease(self) -> timedelta:
        """How long a run is trusted with a sale or a file before it is offered to another run."""
        return timedelta(minutes=self.config.automation.run_lease_minutes)

    def handlers(self) -> dict[str, outbox.OutboxHandler]:
        """Every outbox kind the automation performs (orders, shipping, trading partners), by kind."""
        from gp_pipelines.automation.orders import CREATE_FULFILMENT, SEND_EDI, CreateFulfilmentHandler, SendEdiHandler
        from gp_pipelines.automation.partner_flows import partner_outbox_handlers
        from gp_pipelines.automation.shipping import (
            POST_TRACKING,
            SHIP_IN_CIN7,
            PostTrackingHandler,
            ShipFulfilmentHandler,
        )

        return {
            CREATE_FULFILMENT: CreateFulfilmentHandler(self),
            SEND_EDI: SendEdiHandler(self),
            SHIP_IN_CIN7: ShipFulfilmentHandler(self),
            POST_TRACKING: PostTrackingHandler(self),
            **partner_outbox_handlers(self),
        }

    def retry_due(self, conn: Any, *, now: Any = None) -> list[outbox.OutboxItem]:
        """Run every outbox item that is due (or whose worker died) with this context's handlers."""
        return outbox.run_due(conn, self.handlers(), self.policy, notifier=self.notifier, actor=self.actor, now=now,
                              lease_seconds=self.outbox_lease_seconds)

    def run(self, conn: Any, key: str, kind: str | None = None) -> outbox.OutboxItem:
        """Run one outbox item with this context's handlers, policy and notifier (`kind` when the caller knows
        it, which saves reading the item first)."""
        if kind is None:
            item = outbox.get_item(conn, key)
            if item is None:
                raise outbox.OutboxItemNotFound(key)
            kind = item.kind
        return outbox.run_item(conn, key, self.handlers()[kind], self.policy, notifier=self.notifier,
                               actor=self.actor, lease_seconds=self.outbox_lease_seconds)


@contextlib.contextmanager
def open_context(config: PlatformConfig, database_url: str, *, actor: str, cin7: Callable[[str], Any],
                 shopify: Callable[[str], Any] | None, environ: Mapping[str, str]) -> Iterator[AutomationContext]:
    """A context whose Cin7 clients (from `cin7(instance)`), transports and Shopify clients (from
    `shopify(store)`) open on first use and close when the block ends. Secrets come from `environ`. Trading
    partners' 850s are handled (`partner_flows`)."""
    from gp_pipelines.automation.partner_flows import PARTNER_SET_HANDLERS

    with contextlib.ExitStack() as stack:
        opened: dict[tuple[str, str], Any] = {}

        def once(kind: str, key: str, build: Callable[[], Any]) -> Any:
            if (kind, key) not in opened:
                opened[(kind, key)] = stack.enter_context(build())
            return opened[(kind, key)]

        def transport(partner_key: str) -> Transport:
            partner = config.partner(partner_key)
            return once("transport", partner_key,
                        lambda: transport_for(partner.transport, environ, partner=partner_key))

        yield AutomationContext(
            config=config,
            database_url=database_url,
            cin7=lambda instance: once("cin7", instance, lambda: cin7(instance)),
            transport=transport,
            policy=RetryPolicy.from_config(config.automation),
            notifier=Notifier.from_config(config.notifications, environ),
            actor=actor,
            shopify=(lambda store: once("shopify", store, lambda: shopify(store))) if shopify is not None else None,
            extra_handlers=dict(PARTNER_SET_HANDLERS),
        )


@contextlib.contextmanager
def context_from_environment(config: PlatformConfig, database_url: str, *, actor: str,
                             environ: Mapping[str, str],
                             cin7: Callable[[str], Cin7Client] | None = None) -> Iterator[AutomationContext]:
    """`open_context` outside Dagster (the CLI, the demo, the scenarios): Cin7 clients with the application keys
    in `environ`, sharing the database's rate-limit log with every other process (or from `cin7(instance)`);
    Shopify clients with their tokens."""
    from gp_pipelines.cin7.client import client_from_environment
    from gp_pipelines.cin7.limiter import PostgresRateLimiter
    from gp_pipelines.config import ConfigError
    from gp_pipelines.connectors.shopify import ShopifyClient

    with contextlib.ExitStack() as stack:

        def from_keys(key: str) -> Cin7Client:
            instance = config.instance(key)
            limiter = PostgresRateLimiter(database_url, calls=instance.calls_per_minute, label=instance.key)
            stack.callback(limiter.close)
            return client_from_environment(instance, limiter, environ)

        def shopify(key: str) -> Any:
            store = next(store for store in config.automation.shopify if store.key == key)
            token = environ.get(store.access_token_env)
            if not token:
                raise ConfigError(f"Shopify store {key!r}: environment variable {store.access_token_env} is not set")
            return ShopifyClient(store.shop_url, token, store.api_version, name=store.key,
                                 token_source=f"environment variable {store.access_token_env}")

        yield stack.enter_context(open_context(config, database_url, actor=actor, cin7=cin7 or from_keys,
                                               shopify=shopify if config.automation.shopify else None,
                                               environ=environ))
