"""A trading partner (a retailer's EDI intake) on one machine: it sends 850s and validates, strictly, the 855s,
856s, 810s, 846s and 997s it receives, answering each group with a 997. `retailer` holds the folders, the
sending and the envelope checks; `intake` the business rules per set."""

from gp_pipelines.sandbox.partner.intake import PartnerBook, check_digit_ok, normalized_id
from gp_pipelines.sandbox.partner.retailer import (
    PartnerItem,
    PartnerSandbox,
    Receipt,
    Store,
    items_from_products,
)

__all__ = [
    "PartnerBook",
    "PartnerItem",
    "PartnerSandbox",
    "Receipt",
    "Store",
    "check_digit_ok",
    "items_from_products",
    "normalized_id",
]
