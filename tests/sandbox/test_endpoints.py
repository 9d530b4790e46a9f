"""The generic list handler without HTTP: paging arithmetic (property-based) and the size table."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gp_pipelines.sandbox.cin7.endpoints import LIST_BY_PATH, BadRequest, envelope, select
from gp_pipelines.sandbox.cin7.state import Sandbox

from .conftest import make_options

SANDBOX = Sandbox(make_options())


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 1000), path=st.sampled_from(["salelist", "product", "customer", "purchaselist",
                                                          "ref/productavailability"]))
def test_pages_cover_every_match_exactly_once(limit: int, path: str) -> None:
    endpoint = LIST_BY_PATH[path]
    records = SANDBOX.records(SANDBOX.stores["us"], endpoint.collection)
    matching = select(endpoint, records, {}, since_inclusive=True)
    seen = []
    for page in range(1, math.ceil(len(matching) / limit) + 1):
        body = envelope(endpoint, matching, {"page": str(page), "limit": str(limit)})
        assert body["Total"] == len(matching)
        assert len(body[endpoint.list_key]) == min(limit, len(matching) - (page - 1) * limit)
        seen += [id(row) for row in body[endpoint.list_key]]
    assert len(seen) == len(set(seen)) == len(matching)


def test_bad_since_is_bad_request() -> None:
    endpoint = LIST_BY_PATH["salelist"]
    with pytest.raises(BadRequest):
        select(endpoint, [], {"updatedsince": "soon"}, since_inclusive=True)


def test_medium_size() -> None:
    medium = Sandbox(make_options(size="medium"))
    counts = {key: len(store.collections["sales"]) for key, store in medium.stores.items()}
    assert counts == {"au": 5000, "nz": 5000, "us": 5000}
    assert all(450 <= len(s.collections["products"]) <= 520 for s in medium.stores.values())
