"""Routing planner figures: plans per second for typical orders (4 locations, 1–8 lines), the slowest plan with
20 candidate locations (the exact search's limit), and how often the exact planner beats a greedy one.

`python -m bench routing` or `gp-pipelines bench routing [--json]`; keys: typical_plans_per_s,
typical_p99_ms, twenty_locations_max_ms, twenty_locations_mean_ms, split_share, greedy_worse_share.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from decimal import Decimal

from gp_pipelines.automation.routing import LocationRule, Order, OrderLine, plan_fulfilments

REGIONS = ("NSW", "VIC", "QLD", "WA", "SA")


def _case(rng: random.Random, locations: int, products: int, lines: int) -> tuple[Order, dict, list[LocationRule]]:
    rules = [
        LocationRule(f"L{i:02d}", priority=rng.randint(1, 5),
                     transit_days={"*": rng.choice([1, 2, 3, 4, 5]), rng.choice(REGIONS): 1},
                     cost={"*": rng.choice([5, 7, 9, 12])}, may_split=rng.random() > 0.1)
        for i in range(locations)
    ]  # fmt: skip
    skus = [f"P{j:03d}" for j in range(products)]
    stock = {(rule.location, sku): Decimal(rng.choice([0, 0, 1, 2, 5, 10, 50])) for rule in rules for sku in skus}
    order_lines = tuple(OrderLine(sku, sku, Decimal(rng.choice([1, 1, 2, 3, 6, 12])), str(n))
                        for n, sku in enumerate(rng.sample(skus, lines)))
    return Order("sale", rng.choice(REGIONS), order_lines), stock, rules


def main(as_json: bool = False) -> dict[str, float]:
    rng = random.Random(7)
    typical = [_case(rng, 4, 40, rng.randint(1, 8)) for _ in range(3000)]
    timings = []
    splits = 0
    started = time.perf_counter()
    for order, stock, rules in typical:
        t = time.perf_counter()
        plan = plan_fulfilments(order, stock, rules)
        timings.append(time.perf_counter() - t)
        splits += plan.is_split
    elapsed = time.perf_counter() - started
    wide = [_case(rng, 20, 60, rng.randint(4, 12)) for _ in range(100)]
    wide_timings = []
    greedy_worse = 0
    for order, stock, rules in wide:
        t = time.perf_counter()
        exact = plan_fulfilments(order, stock, rules)
        wide_timings.append(time.perf_counter() - t)
        greedy = plan_fulfilments(order, stock, rules, max_exact_locations=0)
        greedy_worse += greedy.objective > exact.objective
    figures = {
        "typical_plans_per_s": round(len(typical) / elapsed, 1),
        "typical_p99_ms": round(sorted(timings)[int(len(timings) * 0.99)] * 1000, 3),
        "twenty_locations_max_ms": round(max(wide_timings) * 1000, 2),
        "twenty_locations_mean_ms": round(statistics.mean(wide_timings) * 1000, 2),
        "split_share": round(splits / len(typical), 3),
        "greedy_worse_share": round(greedy_worse / len(wide), 3),
    }
    print(json.dumps(figures) if as_json else "\n".join(f"{key}: {value}" for key, value in figures.items()))
    return figures
