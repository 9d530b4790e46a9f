"""What `GET me` tells about an account, checked against what the config expects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.cin7.errors import Cin7ResponseError
from gp_pipelines.config import InstanceConfig


@dataclass(frozen=True)
class AccountProfile:
    instance: str
    company: str
    currency: str
    timezone: str
    raw: dict[str, Any]


class ConfigMismatchError(ValueError):
    """The account answers, but not as the config says it should."""


def fetch_account_profile(client: Cin7Client, instance: InstanceConfig) -> AccountProfile:
    body = client.get("me")
    if not isinstance(body, dict) or "Company" not in body or "Currency" not in body:
        raise Cin7ResponseError("GET me did not return an account object", instance=instance.key, endpoint="me")
    profile = AccountProfile(
        instance=instance.key,
        company=str(body["Company"]),
        currency=str(body["Currency"]),
        timezone=str(body.get("TimeZone", "")),
        raw=body,
    )
    if instance.base_currency and instance.base_currency != profile.currency:
        raise ConfigMismatchError(
            f"instance {instance.key!r}: config says base_currency {instance.base_currency} but the account "
            f"{profile.company!r} reports {profile.currency}; fix base_currency or the account id"
        )
    return profile
