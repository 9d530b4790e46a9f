"""Order routing planner: which locations (warehouses or 3PLs) ship which lines of one order.

A pure function of its inputs, with no database and no Dagster: `plan_fulfilments(order, stock, rules)`.

Objective, compared lexicographically (each criterion only breaks ties of the ones before it):

1. the backordered quantity: ship as much as stock allows. Products are independent, so the minimum is reached
   when every product ships ``min(ordered, available across usable locations)``; whichever way the total over
   products is counted, it is then minimal;
2. the number of shipments (locations used);
3. the delivery time: the order arrives with its slowest shipment, so the largest transit time of the used
   locations to the order's region;
4. the total cost: the sum of each used location's cost for the region (a per-shipment cost, not per unit);
5. location priority (lower wins): the used locations' priorities sorted ascending, compared as sequences;
6. location names, likewise; names are unique, so the result is fully determined by the inputs.

Interpretation choices (where a business rule had to be picked):

- ``may_split=False``: the location only ships an order it can fill completely on its own (every line, full
  quantities). It never takes part in a split, and it is not used at all for an order it cannot fill alone.
- A location serves a region when both its ``transit_days`` and ``cost`` resolve for it: the region's own entry
  (matched ignoring case and surrounding spaces) or the ``"*"`` default. A location that does not serve the
  region is not used, nor is a location without a rule, whatever its stock.
- Stock is taken as given (the caller nets off allocations planned earlier); negative availability, which Cin7
  Core shows for oversold products, counts as zero.
- Order lines of the same product are merged into one demand; the shipped quantity is handed back to those lines
  in the order's line order, so a later line is backordered before an earlier one. Every output line carries the
  order line's ``line_id``, or its 0-based position in ``order.lines`` (as a string) when the line has none.
  Lines with quantity zero produce nothing; a negative quantity is an error.
- Within the chosen locations a product goes to a single location when one of them can supply all of it (fewer
  pick lines, one parcel per product), preferring the fastest, then cheapest, then highest priority, then name;
  otherwise it is filled across them in that same order. This never leaves a chosen location empty: no location
  can be removed from the chosen set without losing coverage, so every covering allocation uses all of them.
- Fulfilments are listed in that preference order; lines within a fulfilment and backorders in order line order.

- Two rules for one location, or two order lines with the same line id, are errors (ValueError): either would
  make the plan ambiguous.

Search: exact. When a single location can fill the whole order it wins (one shipment, nothing backordered).
Otherwise only the splittable locations holding stock for the order are candidates; subsets are searched by size,
from a lower bound (per product, the fewest locations whose largest stocks reach the coverable quantity) upwards,
and the first size with a subset that covers the coverable quantity of every product is the answer. Among the
subsets of that size a depth-first branch and bound finds the best: a branch is cut when the locations left cannot
supply what is still needed, or when the best key it could still reach (fastest and cheapest remaining locations,
lowest priorities and names) is no better than the best subset found. Costs are compared as exact fractions, so
the choice never depends on float rounding. Candidate locations are typically few (< 15) and 20 interchangeable
ones are still searched in milliseconds; above `MAX_EXACT_LOCATIONS` the planner falls back to a greedy cover with
the same tie-breaks: repeatedly take the location that can supply the most of what is still needed, then drop the
locations later picks made unnecessary (least preferred first). The greedy plan backorders the same minimum but
may use more shipments, or slower or costlier ones, than the optimum.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from itertools import accumulate, combinations
from types import MappingProxyType

__all__ = [
    "DEFAULT_REGION",
    "MAX_EXACT_LOCATIONS",
    "FulfilmentLine",
    "LocationRule",
    "Order",
    "OrderLine",
    "PlannedFulfilment",
    "RoutingPlan",
    "brute_force_plan",
    "plan_fulfilments",
]

DEFAULT_REGION = "*"
MAX_EXACT_LOCATIONS = 20  # above this many candidate locations the exact search may blow up: greedy instead
MAX_BRUTE_FORCE_LOCATIONS = 16  # 2**16 subsets: the reference is for tests and benchmarks, not production

ZERO = Decimal(0)


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    sku: str
    quantity: Decimal
    line_id: str = ""


@dataclass(frozen=True)
class Order:
    sale_id: str
    region: str
    lines: tuple[OrderLine, ...]


def _region_key(region: str) -> str:
    return region.strip().casefold()


def _resolve(mapping: Mapping[str, float], region: str) -> float | None:
    """The region's own value, else the "*" default, else None (the location does not serve the region)."""
    if region in mapping:
        return mapping[region]
    wanted = _region_key(region)
    for key, value in mapping.items():
        if _region_key(key) == wanted:
            return value
    return mapping.get(DEFAULT_REGION)


def _frozen_regional(mapping: Mapping[str, float], what: str, location: str) -> Mapping[str, float]:
    seen: set[str] = set()
    for key, value in mapping.items():
        if _region_key(key) in seen:
            raise ValueError(f"location {location!r}: {what} lists region {key!r} twice (ignoring case)")
        seen.add(_region_key(key))
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:  # the search prunes on "adding a location never helps"
            raise ValueError(f"location {location!r}: {what} for region {key!r} must be a number >= 0, not {value!r}")
    # A private read-only copy: the caller mutating its dict later must not change a rule.
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class LocationRule:
    location: str
    partner: str | None = None
    priority: int = 100
    # hash=False: mappings are not hashable, and rules are still usable as set members / dict keys.
    transit_days: Mapping[str, float] = field(default_factory=lambda: {DEFAULT_REGION: 3.0}, hash=False)
    cost: Mapping[str, float] = field(default_factory=lambda: {DEFAULT_REGION: 10.0}, hash=False)
    may_split: bool = True

    def __post_init__(self) -> None:
        if not self.location:
            raise ValueError("a location rule needs a location name")
        object.__setattr__(self, "transit_days", _frozen_regional(self.transit_days, "transit_days", self.location))
        object.__setattr__(self, "cost", _frozen_regional(self.cost, "cost", self.location))

    def serves(self, region: str) -> bool:
        return _resolve(self.transit_days, region) is not None and _resolve(self.cost, region) is not None

    def days_to(self, region: str) -> float:
        days = _resolve(self.transit_days, region)
        if days is None:
            raise KeyError(f"location {self.location!r} has no transit time for region {region!r} and no '*'")
        return float(days)

    def cost_to(self, region: str) -> float:
        cost = _resolve(self.cost, region)
        if cost is None:
            raise KeyError(f"location {self.location!r} has no cost for region {region!r} and no '*'")
        return float(cost)


@dataclass(frozen=True)
class FulfilmentLine:
    product_id: str
    sku: str
    quantity: Decimal
    line_id: str


@dataclass(frozen=True)
class PlannedFulfilment:
    location: str
    partner: str | None
    lines: tuple[FulfilmentLine, ...]
    transit_days: float
    cost: float


@dataclass(frozen=True)
class RoutingPlan:
    fulfilments: tuple[PlannedFulfilment, ...]
    backorders: tuple[FulfilmentLine, ...]

    @property
    def shipments(self) -> int:
        return len(self.fulfilments)

    @property
    def delivery_days(self) -> float:
        """When the whole order has arrived: the slowest shipment's transit time (0 when nothing ships)."""
        return max((fulfilment.transit_days for fulfilment in self.fulfilments), default=0.0)

    @property
    def total_cost(self) -> float:
        return math.fsum(fulfilment.cost for fulfilment in self.fulfilments)  # exact sum: independent of order

    @property
    def is_split(self) -> bool:
        return self.shipments > 1

    @property
    def backordered_quantity(self) -> Decimal:
        return sum((line.quantity for line in self.backorders), ZERO)

    @property
    def fully_covered(self) -> bool:
        return not self.backorders

    @property
    def objective(self) -> tuple[Decimal, int, float, float]:
        """The first four criteria the planner minimises, in order."""
        return self.backordered_quantity, self.shipments, self.delivery_days, self.total_cost


# ---------------------------------------------------------------------------------------------------------------
# Inputs, normalised


def _as_decimal(value: object, what: str) -> Decimal:
    number = value if isinstance(value, Decimal) else Decimal(str(value))  # str(): no binary float expansions
    if not number.is_finite():
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return number


@dataclass(frozen=True)
class _DemandLine:
    line_id: str
    product_index: int
    product_id: str
    sku: str
    quantity: Decimal


@dataclass(frozen=True)
class _Demand:
    """The order merged per product (first-appearance order) plus its lines, for handing quantities back."""

    product_ids: tuple[str, ...]
    quantities: tuple[Decimal, ...]
    lines: tuple[_DemandLine, ...]

    @classmethod
    def of(cls, order: Order) -> _Demand:
        product_index: dict[str, int] = {}
        quantities: list[Decimal] = []
        lines: list[_DemandLine] = []
        line_ids: set[str] = set()
        for position, line in enumerate(order.lines):
            line_id = line.line_id or str(position)
            if line_id in line_ids:
                raise ValueError(f"order {order.sale_id}: line id {line_id!r} is not unique, lines could not be mapped")
            line_ids.add(line_id)
            quantity = _as_decimal(line.quantity, f"order {order.sale_id} line {line_id} quantity")
            if quantity < 0:
                raise ValueError(f"order {order.sale_id} line {line_id}: negative quantity {quantity}")
            if quantity == 0:
                continue
            index = product_index.setdefault(line.product_id, len(product_index))
            if index == len(quantities):
                quantities.append(ZERO)
            quantities[index] += quantity
            lines.append(_DemandLine(line_id, index, line.product_id, line.sku, quantity))
        return cls(tuple(product_index), tuple(quantities), tuple(lines))


@dataclass(frozen=True)
class _Candidate:
    """A location that serves the order's region, with what it could ship of each demanded product."""

    rule: LocationRule
    days: float
    cost: float
    exact_cost: Fraction  # floats summed in different orders round differently; fractions do not
    available: tuple[Decimal, ...]  # per demanded product, capped at the ordered quantity

    @property
    def preference(self) -> tuple[float, float, int, str]:
        return self.days, self.cost, self.rule.priority, self.rule.location

    @property
    def has_stock(self) -> bool:
        return any(quantity > 0 for quantity in self.available)

    def fills(self, demand: _Demand) -> bool:
        return bool(demand.quantities) and self.available == demand.quantities


def _candidates(
    order: Order, demand: _Demand, stock: Mapping[tuple[str, str], Decimal], rules: Sequence[LocationRule]
) -> list[_Candidate]:
    locations = [rule.location for rule in rules]
    if len(set(locations)) != len(locations):
        duplicates = sorted({name for name in locations if locations.count(name) > 1})
        raise ValueError(f"more than one routing rule for location(s) {', '.join(duplicates)}")
    candidates = []
    for rule in sorted(rules, key=lambda rule: rule.location):  # sorted: the caller's rule order must not matter
        if not rule.serves(order.region):
            continue
        available = []
        for product_id, ordered in zip(demand.product_ids, demand.quantities, strict=True):
            on_hand = _as_decimal(stock.get((rule.location, product_id), ZERO), f"stock of {product_id}")
            available.append(min(max(on_hand, ZERO), ordered))
        cost = rule.cost_to(order.region)
        candidates.append(_Candidate(rule, rule.days_to(order.region), cost, Fraction(cost), tuple(available)))
    return candidates


# ---------------------------------------------------------------------------------------------------------------
# Choosing the locations


def _subset_key(subset: Iterable[_Candidate]) -> tuple[float, Fraction, tuple[int, ...], tuple[str, ...]]:
    """Criteria 3 to 6 of a set of locations; smaller is better."""
    chosen = list(subset)
    return (
        max((candidate.days for candidate in chosen), default=0.0),
        sum((candidate.exact_cost for candidate in chosen), Fraction(0)),
        tuple(sorted(candidate.rule.priority for candidate in chosen)),
        tuple(sorted(candidate.rule.location for candidate in chosen)),
    )


def _coverage(subset: Iterable[_Candidate], demand: _Demand) -> tuple[Decimal, ...]:
    """What a set of locations can ship of each product together."""
    totals = [ZERO] * len(demand.quantities)
    for candidate in subset:
        totals = [total + quantity for total, quantity in zip(totals, candidate.available, strict=True)]
    return tuple(min(total, ordered) for total, ordered in zip(totals, demand.quantities, strict=True))


def _covers(subset: Iterable[_Candidate], target: Sequence[Decimal], demand: _Demand) -> bool:
    return all(have >= want for have, want in zip(_coverage(subset, demand), target, strict=True))


def _exact_cover(candidates: list[_Candidate], target: tuple[Decimal, ...]) -> list[_Candidate]:
    """The best set of fewest locations that together can ship `target`, by `_subset_key`.

    Branch and bound over subsets of one size at a time, locations in preference order (transit time first).
    A branch is cut when what its remaining locations can ship cannot cover `target` any more, or when the best
    key it could still reach is no better than the best subset found: the key's parts only grow as locations are
    added, so the lowest the remaining picks can bring is a lower bound.
    """
    ordered = sorted(candidates, key=lambda candidate: candidate.preference)
    count = len(ordered)
    # After position i: the most of product p any s locations can ship, the cheapest any s can cost, and the
    # lowest priorities and names (sorted) among them.
    most_from = [
        [tuple(accumulate(sorted((c.available[p] for c in ordered[i:]), reverse=True), initial=ZERO))
         for p in range(len(target))]
        for i in range(count + 1)
    ]  # fmt: skip
    cheapest_from = [tuple(accumulate(sorted(c.exact_cost for c in ordered[i:]), initial=Fraction(0))) for i in
                     range(count + 1)]  # fmt: skip
    priorities_from = [sorted(c.rule.priority for c in ordered[i:]) for i in range(count + 1)]
    names_from = [sorted(c.rule.location for c in ordered[i:]) for i in range(count + 1)]

    def can_still_cover(need: Sequence[Decimal], start: int, slots: int) -> bool:
        return all(want <= 0 or most_from[start][p][slots] >= want for p, want in enumerate(need))

    def lowest_key(chosen: list[_Candidate], start: int, slots: int) -> tuple:
        """No subset of `chosen` plus `slots` locations from ordered[start:] has a smaller `_subset_key`."""
        if not slots:
            return _subset_key(chosen)
        return (
            max(*(c.days for c in chosen), ordered[start].days),  # later locations are no faster
            sum((c.exact_cost for c in chosen), cheapest_from[start][slots]),
            tuple(sorted([*(c.rule.priority for c in chosen), *priorities_from[start][:slots]])),
            tuple(sorted([*(c.rule.location for c in chosen), *names_from[start][:slots]])),
        )

    def best_of_size(size: int) -> list[_Candidate]:
        """The best subset of `size` locations covering `target`; empty when there is none."""
        best: list[_Candidate] = []
        best_key = None

        def visit(start: int, chosen: list[_Candidate], need: tuple[Decimal, ...]) -> None:
            nonlocal best, best_key
            slots = size - len(chosen) - 1  # still to pick after this level's pick
            for index in range(start, count - slots):
                candidate = ordered[index]
                extended = [*chosen, candidate]
                if best_key is not None:
                    if candidate.days > best_key[0]:
                        break  # this location and every later one are too slow
                    if lowest_key(extended, index + 1, slots) >= best_key:
                        continue
                new_need = tuple(want - have for want, have in zip(need, candidate.available, strict=True))
                if not can_still_cover(new_need, index + 1, slots):
                    continue
                if slots:
                    visit(index + 1, extended, new_need)
                else:  # covered (can_still_cover with no slots left) and better than the best so far
                    best, best_key = extended, _subset_key(extended)

        visit(0, [], target)
        return best

    smallest = next(size for size in range(1, count + 1) if can_still_cover(target, 0, size))
    for size in range(smallest, count + 1):
        if best := best_of_size(size):
            return best
    raise AssertionError("all candidate locations together always cover the coverable quantity")


def _supplies(candidate: _Candidate, need: Sequence[Decimal]) -> Decimal:
    """How much of what is still needed a location could ship (all products added up)."""
    return sum((min(have, max(want, ZERO)) for have, want in zip(candidate.available, need, strict=True)), ZERO)


def _greedy_cover(candidates: list[_Candidate], target: tuple[Decimal, ...], demand: _Demand) -> list[_Candidate]:
    """Too many locations for the exact search: take the largest contributor each time, then drop the unneeded."""
    need = list(target)
    remaining = sorted(candidates, key=lambda candidate: candidate.preference)
    chosen: list[_Candidate] = []
    while any(want > 0 for want in need):
        # Adding up quantities of different products is crude, but it only orders the picks.
        pick = min(remaining, key=lambda candidate: (-_supplies(candidate, need), candidate.preference))
        remaining.remove(pick)
        chosen.append(pick)
        need = [want - have for want, have in zip(need, pick.available, strict=True)]
    # An early large pick can be made redundant by later ones; kept, it could end up with nothing to ship.
    for candidate in sorted(chosen, key=lambda candidate: candidate.preference, reverse=True):
        without = [other for other in chosen if other is not candidate]
        if _covers(without, target, demand):
            chosen = without
    return chosen


def _choose_locations(demand: _Demand, candidates: list[_Candidate], max_exact_locations: int) -> list[_Candidate]:
    fillers = [candidate for candidate in candidates if candidate.fills(demand)]
    if fillers:  # nothing backordered in one shipment: nothing can beat that, and may_split=False is welcome
        return [min(fillers, key=lambda candidate: _subset_key([candidate]))]
    splittable = [candidate for candidate in candidates if candidate.rule.may_split and candidate.has_stock]
    target = _coverage(splittable, demand)
    if not any(quantity > 0 for quantity in target):
        return []
    if len(splittable) > max_exact_locations:
        return _greedy_cover(splittable, target, demand)
    return _exact_cover(splittable, target)


# ---------------------------------------------------------------------------------------------------------------
# From chosen locations to lines


def _allocate_product(product: int, ordered: list[_Candidate], need: Decimal) -> list[tuple[str, Decimal]]:
    """How much of one product each chosen location ships: one location when one can, else in preference order."""
    if need <= 0:
        return []
    for candidate in ordered:
        if candidate.available[product] >= need:
            return [(candidate.rule.location, need)]
    allocation = []
    for candidate in ordered:
        take = min(candidate.available[product], need)
        if take > 0:
            allocation.append((candidate.rule.location, take))
            need -= take
    return allocation


def _build_plan(demand: _Demand, chosen: list[_Candidate]) -> RoutingPlan:
    ordered = sorted(chosen, key=lambda candidate: candidate.preference)
    coverage = _coverage(ordered, demand)
    queues = [deque(_allocate_product(p, ordered, coverage[p])) for p in range(len(demand.product_ids))]
    lines_by_location: dict[str, list[FulfilmentLine]] = {candidate.rule.location: [] for candidate in ordered}
    backorders = []
    for line in demand.lines:  # hand each product's shipped quantity back to its lines, first line first
        remaining, queue = line.quantity, queues[line.product_index]
        while remaining > 0 and queue:
            location, quantity = queue[0]
            take = min(remaining, quantity)
            lines_by_location[location].append(FulfilmentLine(line.product_id, line.sku, take, line.line_id))
            remaining -= take
            if take == quantity:
                queue.popleft()
            else:
                queue[0] = (location, quantity - take)
        if remaining > 0:
            backorders.append(FulfilmentLine(line.product_id, line.sku, remaining, line.line_id))
    fulfilments = tuple(
        PlannedFulfilment(c.rule.location, c.rule.partner, tuple(lines_by_location[c.rule.location]), c.days, c.cost)
        for c in ordered
        if lines_by_location[c.rule.location]  # never a shipment of nothing (the chosen sets are minimal anyway)
    )
    return RoutingPlan(fulfilments, tuple(backorders))


# ---------------------------------------------------------------------------------------------------------------
# Entry points


def plan_fulfilments(
    order: Order,
    stock: Mapping[tuple[str, str], Decimal],
    rules: Sequence[LocationRule],
    *,
    max_exact_locations: int = MAX_EXACT_LOCATIONS,
) -> RoutingPlan:
    """The best fulfilments for `order` (see the module docstring for the objective and its interpretation).

    `stock` maps (location, product id) to the quantity available there, already net of earlier allocations.
    Locations without a rule in `rules`, or whose rule does not serve the order's region, are not used. Above
    `max_exact_locations` candidate locations (splittable ones with stock for the order) the plan is greedy.
    """
    demand = _Demand.of(order)
    candidates = _candidates(order, demand, stock, rules)
    return _build_plan(demand, _choose_locations(demand, candidates, max_exact_locations))


def brute_force_plan(
    order: Order, stock: Mapping[tuple[str, str], Decimal], rules: Sequence[LocationRule]
) -> RoutingPlan:
    """The reference for `plan_fulfilments`: every subset of locations, scored on the full objective.

    Exponential; refuses more than `MAX_BRUTE_FORCE_LOCATIONS` locations serving the region.
    """
    demand = _Demand.of(order)
    candidates = _candidates(order, demand, stock, rules)
    if len(candidates) > MAX_BRUTE_FORCE_LOCATIONS:
        raise ValueError(f"brute force over {len(candidates)} locations: at most {MAX_BRUTE_FORCE_LOCATIONS}")
    best: tuple[_Candidate, ...] = ()
    best_key = None
    for size in range(len(candidates) + 1):
        for subset in combinations(candidates, size):
            if not all(candidate.has_stock for candidate in subset):
                continue  # a location with nothing to ship is not a shipment
            if any(not candidate.rule.may_split for candidate in subset) and not (
                size == 1 and subset[0].fills(demand)
            ):
                continue
            backordered = sum(demand.quantities, ZERO) - sum(_coverage(subset, demand), ZERO)
            key = (backordered, size, *_subset_key(subset))
            if best_key is None or key < best_key:
                best, best_key = subset, key
    return _build_plan(demand, list(best))
