"""A 3PL warehouse stand-in: takes 940s from its inbox, answers with 997s and ships with 945s (see `warehouse`)."""

from gp_pipelines.sandbox.threepl.documents import FULFILMENTS, MALFORMED_KINDS, ShippedLine
from gp_pipelines.sandbox.threepl.warehouse import (
    AckRecord,
    PassSummary,
    ShipmentRecord,
    ThreePLOptions,
    ThreePLWarehouse,
    WarehouseOrder,
)

__all__ = [
    "FULFILMENTS",
    "MALFORMED_KINDS",
    "AckRecord",
    "PassSummary",
    "ShipmentRecord",
    "ShippedLine",
    "ThreePLOptions",
    "ThreePLWarehouse",
    "WarehouseOrder",
]
