"""The routing planner: invariants on random orders, the exact optimum against brute force, and readable cases."""

from __future__ import annotations

import functools
import math
import time
from collections import defaultdict
from decimal import Decimal
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gp_pipelines.automation.routing import (
    FulfilmentLine,
    LocationRule,
    Order,
    OrderLine,
    RoutingPlan,
    brute_force_plan,
    plan_fulfilments,
)

D = Decimal
LOCATIONS = ["A", "B", "C", "D", "E", "F", "G"]
PRODUCTS = ["P1", "P2", "P3", "P4"]
REGIONS = ["NSW", "VIC", "WA", " nsw "]

# Few distinct values, so ties on transit time, cost and priority are common and the tie-breaks get exercised.
# Quantities have one decimal place, drawn as integer tenths: far cheaper for hypothesis than st.decimals, and
# drawing is most of these tests' time (hence also the strategies built once, not per example). Order lines:
# tenths below 1 are zero quantities. Stock: below -20 means no stock record, -20..-1 oversold (negative in
# Cin7 Core); crowded cases never oversell and mostly have a record.
line_tenths = st.integers(-16, 120).map(lambda n: D(max(n, 0)) / 10)
stock_tenths = st.integers(-50, 80).map(lambda n: None if n < -20 else D(n) / 10)
crowded_stock_tenths = st.integers(-10, 120).map(lambda n: None if n < 0 else D(n) / 10)
days = st.sampled_from([0, 1.0, 2.0, 3.5])
costs = st.sampled_from([0.0, 5.0, 7.5, 10.0])
product_picks = st.lists(st.integers(0, len(PRODUCTS) - 1), min_size=1, max_size=6)


def regional(values: st.SearchStrategy, regions: list[str], always_default: bool) -> st.SearchStrategy:
    """A "*" default (mostly) plus overrides; without the default the location serves only the listed regions."""
    default = values.map(lambda value: {"*": value})
    if not always_default:
        default = st.tuples(st.integers(0, 6), default).map(lambda drawn: drawn[1] if drawn[0] else {})
    overrides = st.dictionaries(st.sampled_from(regions), values, max_size=2)
    return st.tuples(default, overrides).map(lambda parts: parts[0] | parts[1])


RULE_SETTINGS = {
    crowded: st.fixed_dictionaries({
        "with_partner": st.booleans(), "priority": st.sampled_from([1, 2, 100]),
        "transit_days": regional(days, ["nsw", "VIC"], crowded), "cost": regional(costs, ["WA"], crowded),
        "may_split": st.sampled_from([True, True, True, False]),
    })
    for crowded in (False, True)
}  # fmt: skip


@functools.cache
def location_names(crowded: bool, most_locations: int) -> st.SearchStrategy:
    return st.lists(st.sampled_from(LOCATIONS[:most_locations]), unique=True, min_size=1 + 2 * crowded,
                    max_size=most_locations)  # fmt: skip


@st.composite
def cases(
    draw, crowded: bool = False, most_locations: int = 4
) -> tuple[Order, dict[tuple[str, str], Decimal], list[LocationRule]]:
    """An order, stock and rules. Crowded: at least 3 locations, all serving every region and holding most
    products, so there are several ways to cover the order and the search has something to choose between."""
    products = PRODUCTS[: 2 + draw(st.integers(0, 2)) if crowded else 1 + draw(st.integers(0, 3))]
    with_ids = draw(st.booleans())
    lines = tuple(
        OrderLine(product, product.lower(), draw(line_tenths), f"line-{position}" if with_ids else "")
        for position, product in enumerate(products[pick % len(products)] for pick in draw(product_picks))
    )
    order = Order("SO-1", draw(st.sampled_from(REGIONS)), lines)
    rules = []
    for name in draw(location_names(crowded, most_locations)):
        settings_ = draw(RULE_SETTINGS[crowded])
        partner = f"3pl-{name.lower()}" if settings_.pop("with_partner") else None
        rules.append(LocationRule(name, partner, **settings_))
    levels = crowded_stock_tenths if crowded else stock_tenths
    stock = {
        (location, product): level
        for location in [*(rule.location for rule in rules), "Z"]  # Z has stock but never a rule
        for product in products
        if (level := draw(levels)) is not None
    }
    return order, stock, rules


def line_ids(order: Order) -> list[str]:
    return [line.line_id or str(position) for position, line in enumerate(order.lines)]


def shipped_per_location_product(plan: RoutingPlan) -> dict[tuple[str, str], Decimal]:
    shipped: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for fulfilment in plan.fulfilments:
        for line in fulfilment.lines:
            shipped[fulfilment.location, line.product_id] += line.quantity
    return shipped


def check_lines_account_for_the_order(order: Order, plan: RoutingPlan) -> None:
    ordered = dict(zip(line_ids(order), order.lines, strict=True))
    accounted: dict[str, Decimal] = defaultdict(Decimal)
    position = {line_id: index for index, line_id in enumerate(ordered)}
    for lines in [*(fulfilment.lines for fulfilment in plan.fulfilments), plan.backorders]:
        assert [position[line.line_id] for line in lines] == sorted(position[line.line_id] for line in lines)
        assert len({line.line_id for line in lines}) == len(lines)  # a line at most once per shipment
        for line in lines:
            assert line.quantity > 0
            assert (line.product_id, line.sku) == (ordered[line.line_id].product_id, ordered[line.line_id].sku)
            accounted[line.line_id] += line.quantity
    assert accounted == {line_id: line.quantity for line_id, line in ordered.items() if line.quantity > 0}


def check_fulfilments_follow_the_rules(order: Order, plan: RoutingPlan, rules: list[LocationRule]) -> None:
    by_location = {rule.location: rule for rule in rules}
    assert len({fulfilment.location for fulfilment in plan.fulfilments}) == plan.shipments
    for fulfilment in plan.fulfilments:
        rule = by_location[fulfilment.location]
        assert fulfilment.lines
        assert (fulfilment.partner, fulfilment.transit_days, fulfilment.cost) == (
            rule.partner, rule.days_to(order.region), rule.cost_to(order.region),
        )  # fmt: skip
        if not rule.may_split:
            assert plan.shipments == 1 and plan.fully_covered


def optimum(order: Order, stock: dict, rules: list[LocationRule]) -> tuple[Decimal, int, float, float]:
    """The best (backordered, shipments, delivery days, cost), worked out from the raw inputs over every subset."""
    demand: dict[str, Decimal] = defaultdict(Decimal)
    for line in order.lines:
        if line.quantity > 0:
            demand[line.product_id] += line.quantity
    serving = [rule for rule in rules if rule.serves(order.region)]

    def available(rule: LocationRule, product: str) -> Decimal:
        return max(stock.get((rule.location, product), D(0)), D(0))

    best = None
    for size in range(len(serving) + 1):
        for subset in combinations(serving, size):
            if not all(any(available(rule, product) > 0 for product in demand) for rule in subset):
                continue
            fills_alone = size == 1 and all(available(subset[0], p) >= q for p, q in demand.items())
            if not fills_alone and not all(rule.may_split for rule in subset):
                continue
            shipped = sum(min(q, sum((available(rule, p) for rule in subset), D(0))) for p, q in demand.items())
            objective = (
                sum(demand.values(), D(0)) - shipped, size,
                max((rule.days_to(order.region) for rule in subset), default=0.0),
                math.fsum(rule.cost_to(order.region) for rule in subset),
            )  # fmt: skip
            best = objective if best is None else min(best, objective)
    return best


# ---------------------------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=40, deadline=None)
@given(cases())
def test_never_allocates_more_than_available(case):
    order, stock, rules = case
    plan = plan_fulfilments(order, stock, rules)
    for (location, product), quantity in shipped_per_location_product(plan).items():
        assert quantity <= stock.get((location, product), D(0))


@settings(max_examples=50, deadline=None)
@given(cases())
def test_every_ordered_quantity_is_shipped_or_backordered_exactly(case):
    order, stock, rules = case
    plan = plan_fulfilments(order, stock, rules)
    check_lines_account_for_the_order(order, plan)
    check_fulfilments_follow_the_rules(order, plan, rules)


@settings(max_examples=40, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_same_input_same_plan_whatever_the_order_of_rules_and_stock(case, random):
    order, stock, rules = case
    shuffled_rules, shuffled_stock = list(rules), list(stock.items())
    random.shuffle(shuffled_rules)
    random.shuffle(shuffled_stock)
    plan = plan_fulfilments(order, stock, rules)
    assert plan_fulfilments(order, dict(shuffled_stock), shuffled_rules) == plan
    assert plan_fulfilments(order, stock, rules) == plan


@settings(max_examples=120, deadline=None)
@given(st.one_of(cases(), cases(crowded=True)))
def test_matches_the_brute_force_optimum(case):
    order, stock, rules = case
    plan = plan_fulfilments(order, stock, rules)
    assert plan == brute_force_plan(order, stock, rules)  # same objective and the same tie-breaks
    assert plan.objective == optimum(order, stock, rules)


@settings(max_examples=30, deadline=None)
@given(cases(crowded=True, most_locations=7))
def test_matches_the_brute_force_optimum_on_wider_networks(case):
    order, stock, rules = case  # up to 7 locations: deeper searches, more pruning
    assert plan_fulfilments(order, stock, rules) == brute_force_plan(order, stock, rules)


@settings(max_examples=40, deadline=None)
@given(cases())
def test_greedy_fallback_keeps_the_invariants_and_the_backorder_minimum(case):
    order, stock, rules = case
    plan = plan_fulfilments(order, stock, rules, max_exact_locations=0)
    check_lines_account_for_the_order(order, plan)
    check_fulfilments_follow_the_rules(order, plan, rules)
    for (location, product), quantity in shipped_per_location_product(plan).items():
        assert quantity <= stock.get((location, product), D(0))
    best = optimum(order, stock, rules)
    assert plan.backordered_quantity == best[0]
    assert plan.objective >= best


# ---------------------------------------------------------------------------------------------------------------
# Examples


def rule(location: str, days: float = 3.0, cost: float = 10.0, **options) -> LocationRule:
    return LocationRule(location, transit_days={"*": days}, cost={"*": cost}, **options)


def order_of(*lines: tuple[str, str], region: str = "NSW") -> Order:
    return Order("SO-42", region, tuple(OrderLine(product, product.lower(), D(amount)) for product, amount in lines))


def shipped(plan: RoutingPlan) -> dict[str, list[tuple[str, Decimal]]]:
    return {f.location: [(line.product_id, line.quantity) for line in f.lines] for f in plan.fulfilments}


def test_one_location_with_everything_beats_a_faster_split():
    stock = {("SLOW", "P1"): D(5), ("SLOW", "P2"): D(5), ("FAST1", "P1"): D(5), ("FAST2", "P2"): D(5)}
    rules = [rule("SLOW", days=6), rule("FAST1", days=1, cost=1), rule("FAST2", days=1, cost=1)]
    plan = plan_fulfilments(order_of(("P1", "2"), ("P2", "3")), stock, rules)
    assert shipped(plan) == {"SLOW": [("P1", D(2)), ("P2", D(3))]}
    assert (plan.shipments, plan.is_split, plan.fully_covered, plan.delivery_days) == (1, False, True, 6.0)


def test_splits_when_no_single_location_can_fill():
    stock = {("MEL", "P1"): D(5), ("SYD", "P2"): D(5), ("BNE", "P1"): D(5), ("BNE", "P2"): D(1)}
    rules = [rule("MEL", days=2), rule("SYD", days=1), rule("BNE", days=1)]
    plan = plan_fulfilments(order_of(("P1", "4"), ("P2", "4")), stock, rules)
    # BNE + SYD arrive in 1 day; anything with MEL takes 2. BNE's one P2 is not needed: SYD ships all four.
    assert shipped(plan) == {"BNE": [("P1", D(4))], "SYD": [("P2", D(4))]}
    assert (plan.is_split, plan.delivery_days, plan.total_cost) == (True, 1.0, 20.0)


def test_backorders_what_stock_cannot_cover():
    order = Order("SO-7", "NSW", (OrderLine("P1", "p1", D(10), "a"), OrderLine("P9", "p9", D(2), "b")))
    stock = {("MEL", "P1"): D(4), ("SYD", "P1"): D(3)}
    plan = plan_fulfilments(order, stock, [rule("MEL"), rule("SYD")])
    assert shipped(plan) == {"MEL": [("P1", D(4))], "SYD": [("P1", D(3))]}
    assert plan.backorders == (FulfilmentLine("P1", "p1", D(3), "a"), FulfilmentLine("P9", "p9", D(2), "b"))
    assert (plan.fully_covered, plan.backordered_quantity) == (False, D(5))


def test_no_split_location_ships_only_whole_orders():
    rules = [rule("3PL", days=1, cost=1, partner="acme", may_split=False), rule("MEL", days=4), rule("SYD", days=4)]
    order = order_of(("P1", "5"), ("P2", "5"))
    # It could ship P1, but not the whole order: it takes no part in a split, even if that leaves a backorder.
    partial = {("3PL", "P1"): D(9), ("MEL", "P2"): D(5)}
    plan = plan_fulfilments(order, partial, rules)
    assert shipped(plan) == {"MEL": [("P2", D(5))]}
    assert plan.backorders == (FulfilmentLine("P1", "p1", D(5), "0"),)
    # When it can fill everything, it ships the order alone.
    whole = {**partial, ("3PL", "P2"): D(5), ("SYD", "P1"): D(5)}
    plan = plan_fulfilments(order, whole, rules)
    assert shipped(plan) == {"3PL": [("P1", D(5)), ("P2", D(5))]}
    assert plan.fulfilments[0].partner == "acme"


def test_transit_and_cost_depend_on_the_region():
    stock = {("SYD", "P1"): D(5), ("PER", "P1"): D(5)}
    rules = [
        LocationRule("SYD", transit_days={"*": 2, "NSW": 1, "WA": 5}, cost={"*": 10}),
        LocationRule("PER", transit_days={"*": 2, "WA": 1, "NSW": 5}, cost={"*": 10, "VIC": 8}),
    ]
    assert list(shipped(plan_fulfilments(order_of(("P1", "1"), region="WA"), stock, rules))) == ["PER"]
    assert list(shipped(plan_fulfilments(order_of(("P1", "1"), region="nsw"), stock, rules))) == ["SYD"]
    vic = plan_fulfilments(order_of(("P1", "1"), region="VIC"), stock, rules)  # same days: the cheaper one
    assert (list(shipped(vic)), vic.delivery_days, vic.total_cost) == (["PER"], 2.0, 8.0)
    # Without a "*" default a location does not serve other regions at all.
    regional_only = [LocationRule("SYD", transit_days={"NSW": 1}), LocationRule("PER")]
    assert list(shipped(plan_fulfilments(order_of(("P1", "1"), region="QLD"), stock, regional_only))) == ["PER"]


def test_fractional_quantities_are_exact():
    stock = {("MEL", "FLOUR"): D("1.25"), ("SYD", "FLOUR"): D("0.8")}
    plan = plan_fulfilments(order_of(("FLOUR", "2.5")), stock, [rule("MEL", days=1), rule("SYD", days=2)])
    assert shipped(plan) == {"MEL": [("FLOUR", D("1.25"))], "SYD": [("FLOUR", D("0.8"))]}
    assert plan.backorders == (FulfilmentLine("FLOUR", "flour", D("0.45"), "0"),)


def test_repeated_product_lines_are_merged_and_mapped_back_in_order():
    order = Order("SO-9", "NSW", (
        OrderLine("P1", "p1", D(3), "a"), OrderLine("P2", "p2", D(1), "b"), OrderLine("P1", "p1", D(4), "c"),
        OrderLine("P3", "p3", D(0), "d"),
    ))  # fmt: skip
    stock = {("MEL", "P1"): D(5), ("MEL", "P2"): D(1), ("SYD", "P1"): D(1)}
    plan = plan_fulfilments(order, stock, [rule("MEL", days=1), rule("SYD", days=2)])
    assert [(f.location, f.lines) for f in plan.fulfilments] == [
        ("MEL", (FulfilmentLine("P1", "p1", D(3), "a"), FulfilmentLine("P2", "p2", D(1), "b"),
                 FulfilmentLine("P1", "p1", D(2), "c"))),
        ("SYD", (FulfilmentLine("P1", "p1", D(1), "c"),)),
    ]  # fmt: skip
    assert plan.backorders == (FulfilmentLine("P1", "p1", D(1), "c"),)  # the later line waits; the zero line is gone


def test_ties_break_on_cost_then_priority_then_name():
    stock = {(name, "P1"): D(1) for name in ["B", "A", "C", "D"]}
    order = order_of(("P1", "1"))
    cheaper = [rule("A", cost=10), rule("B", cost=9), rule("C", cost=10)]
    assert list(shipped(plan_fulfilments(order, stock, cheaper))) == ["B"]
    prioritised = [rule("A", priority=5), rule("B", priority=5), rule("C", priority=1)]
    assert list(shipped(plan_fulfilments(order, stock, prioritised))) == ["C"]
    assert list(shipped(plan_fulfilments(order, stock, [rule("D"), rule("B"), rule("C")]))) == ["B"]


@pytest.mark.parametrize(("slow_days", "slow_cost", "best"), [(2, 50, (2.0, 3.0)), (3, 0, (2.0, 3.0))])
def test_a_better_set_found_after_a_worse_one_wins(slow_days, slow_cost, best):
    # In preference order the search meets A+SLOW first: more expensive (first case) or slower (second) than B+C,
    # which must still win. Checks that the search's bounds never cut off the optimum.
    stock = {("A", "X"): D(1), ("B", "X"): D(1), ("B", "Z"): D(1), ("C", "W"): D(1)}
    stock |= {("SLOW", "Z"): D(1), ("SLOW", "W"): D(1)}
    rules = [rule("A", 1, cost=1), rule("B", 1, cost=2), rule("C", 2, cost=1), rule("SLOW", slow_days, slow_cost)]
    plan = plan_fulfilments(order_of(("X", "1"), ("Z", "1"), ("W", "1")), stock, rules)
    assert shipped(plan) == {"B": [("X", D(1)), ("Z", D(1))], "C": [("W", D(1))]}
    assert (plan.delivery_days, plan.total_cost) == best


def test_locations_without_a_rule_and_negative_stock_are_not_used():
    stock = {("GHOST", "P1"): D(10), ("MEL", "P1"): D(-3), ("SYD", "P1"): D(2)}
    plan = plan_fulfilments(order_of(("P1", "5")), stock, [rule("MEL"), rule("SYD")])
    assert shipped(plan) == {"SYD": [("P1", D(2))]}
    assert plan.backordered_quantity == D(3)


def test_empty_order_and_no_stock():
    assert plan_fulfilments(order_of(), {}, [rule("MEL")]) == RoutingPlan((), ())
    plan = plan_fulfilments(order_of(("P1", "2")), {}, [])
    assert (plan.shipments, plan.delivery_days, plan.total_cost, plan.backordered_quantity) == (0, 0.0, 0.0, D(2))


def test_rejects_ambiguous_or_invalid_input():
    with pytest.raises(ValueError, match="more than one routing rule"):
        plan_fulfilments(order_of(("P1", "1")), {}, [rule("MEL"), rule("MEL", days=1)])
    with pytest.raises(ValueError, match="negative quantity"):
        plan_fulfilments(order_of(("P1", "-1")), {}, [rule("MEL")])
    duplicate_ids = Order("SO", "NSW", (OrderLine("P1", "p1", D(1), "x"), OrderLine("P2", "p2", D(1), "x")))
    with pytest.raises(ValueError, match="not unique"):
        plan_fulfilments(duplicate_ids, {}, [rule("MEL")])
    with pytest.raises(ValueError, match=">= 0"):
        rule("MEL", cost=-1)
    with pytest.raises(KeyError):
        LocationRule("MEL", transit_days={"NSW": 1}).days_to("WA")


def test_rules_are_frozen_and_hashable():
    transit = {"*": 2.0}
    melbourne = LocationRule("MEL", transit_days=transit)
    transit["*"] = 9.0
    assert melbourne.days_to("anywhere") == 2.0
    assert len({melbourne, LocationRule("MEL", transit_days={"*": 2.0})}) == 1


def test_twenty_interchangeable_locations_are_searched_quickly():
    # Every subset of ten ties on transit and cost: the search must cut the ties, not enumerate 184,756 of them.
    names = [f"L{index:02}" for index in range(20)]
    stock = {(name, product): D(5) for name in names for product in ["P1", "P2", "P3"]}
    started = time.perf_counter()
    plan = plan_fulfilments(order_of(("P1", "50"), ("P2", "50"), ("P3", "50")), stock, [rule(n) for n in names])
    assert time.perf_counter() - started < 2
    assert list(shipped(plan)) == names[:10]


def test_greedy_fallback_above_the_exact_bound():
    # 25 candidates: greedy. One location has half the order, the rest a unit each of one product.
    names = [f"L{index:02}" for index in range(25)]
    stock = {(name, f"P{index % 3}"): D(1) for index, name in enumerate(names)}
    stock["L24", "P0"] = stock["L24", "P1"] = D(2)
    order = order_of(("P0", "3"), ("P1", "2"), ("P2", "1"))
    plan = plan_fulfilments(order, stock, [rule(name) for name in names])
    check_lines_account_for_the_order(order, plan)
    assert plan.fully_covered
    assert shipped(plan)["L24"] == [("P0", D(2)), ("P1", D(2))]
    assert plan.shipments == 3  # L24, one more P0 and one P2: here greedy finds the optimum too


def test_greedy_fallback_drops_locations_later_picks_made_unneeded():
    # The classic trap for greedy set cover: BIG supplies most, but SMALL1 + SMALL2 cover everything on their own.
    stock = {("BIG", product): D(1) for product in ["P2", "P3", "P4", "P5"]}
    stock |= {("SMALL1", product): D(1) for product in ["P1", "P2", "P3"]}
    stock |= {("SMALL2", product): D(1) for product in ["P4", "P5", "P6"]}
    order = order_of(*((f"P{index}", "1") for index in range(1, 7)))
    rules = [rule("BIG", days=1), rule("SMALL1"), rule("SMALL2")]
    greedy = plan_fulfilments(order, stock, rules, max_exact_locations=0)
    assert list(shipped(greedy)) == ["SMALL1", "SMALL2"]
    assert greedy == plan_fulfilments(order, stock, rules)  # here it finds the optimum too
