"""Trading-partner config: typed fields with defaults a 3PL never needs, shorthand margins, named mistakes."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from gp_pipelines.config import ConfigError, config_to_yaml, parse_config

BASE = """
reporting_currency: USD
instances:
  - key: au
    name: Example AU
    account_id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301
    application_key_env: [CIN7_AU_KEY]
partners:
  - key: acme3pl
    name: Acme 3PL
    kind: threepl
    instance: au
    interchange_id: ACME3PL
    transport: {kind: folder, root: /srv/edi/acme}
  - key: bigbox
    name: BigBox Retail
    kind: trading
    instance: au
    interchange_id: BIGBOX
    usage: T
    transport: {kind: sftp, host: edi.bigbox.example, username_env: BIGBOX_USER}
    customer: BigBox Stores
    location: Main Warehouse
    item_match: [upc, vendor_part]
    item_map: {"RET-55": "TEA-1"}
    ship_to:
      "0012": {customer: BigBox Store 12}
      "0099": {name: DC West, address: {line1: 9 Dock Road, city: Perth, state: WA, postcode: "6000"}}
    price_tier: Wholesale
    price_tolerance: 0.05
    carrier_scac: {UPS: UPSN, Sendle: SNDL}
    gs1_company_prefix: "0614141"
    sscc_extension_digit: 3
    ack_overdue_minutes: 120
    inventory: {per_location: true, safety_buffer: "10%", locations: [Main Warehouse]}
"""


def load(text: str = BASE):
    return parse_config(yaml.safe_load(textwrap.dedent(text)), "gp.yaml")


def test_trading_fields_load_typed():
    config = load()
    retail = config.partner("bigbox")
    assert retail.sets == ["850", "855", "856", "810", "846", "997"] and retail.exchanges("846")
    assert retail.item_match == ["upc", "vendor_part"] and retail.item_map == {"RET-55": "TEA-1"}
    assert retail.ship_to["0012"].customer == "BigBox Store 12" and retail.ship_to["0012"].address is None
    assert retail.ship_to["0099"].address.postcode == "6000"
    assert (retail.price_tolerance.amount, retail.price_tolerance.percent) == (0.05, 0)
    assert (retail.inventory.safety_buffer.amount, retail.inventory.safety_buffer.percent) == (0, 10)
    assert retail.inventory.safety_buffer.of(50) == 5
    assert (retail.gs1_company_prefix, retail.sscc_extension_digit, retail.ack_overdue_minutes) == ("0614141", 3, 120)
    assert retail.partial_acceptance and retail.accepted_uoms == ["EA"]


def test_a_3pl_needs_none_of_the_trading_fields():
    threepl = load().partner("acme3pl")
    assert threepl.sets == ["940", "945", "997"]
    assert threepl.customer is None and threepl.gs1_company_prefix is None and threepl.item_map == {}


def test_config_round_trips_through_yaml():
    config = load()
    again = parse_config(yaml.safe_load(config_to_yaml(config)), "again")
    assert again.partner("bigbox") == config.partner("bigbox")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("item_match: [upc, vendor_part]", "item_match: [upc, ean]", "item_match: unknown kinds ['ean']"),
        ('gs1_company_prefix: "0614141"', 'gs1_company_prefix: "06141"', "gs1_company_prefix: must be the 6 to 12"),
        ('    gs1_company_prefix: "0614141"\n', "", "gs1_company_prefix: required when the partner receives 856s"),
        ("price_tolerance: 0.05", "price_tolerance: ten", "price_tolerance: 'ten' is neither a number"),
        ('safety_buffer: "10%"', 'safety_buffer: "150%"', "safety_buffer.percent"),
        ("Sendle: SNDL", "Sendle: sendle", "a SCAC is 2 to 4 capital letters"),
        ("    usage: T\n", "    usage: T\n    sets: [850, 940]\n", "a trading partner exchanges"),
        ("sscc_extension_digit: 3", "sscc_extension_digit: 12", "sscc_extension_digit"),
        ("    customer: BigBox Stores\n", "    customer: BigBox Stores\n    details: {}\n", "details: unknown field"),
    ],
)
def test_mistakes_are_named(old, new, expected):
    assert old in BASE
    with pytest.raises(ConfigError) as caught:
        load(BASE.replace(old, new))
    assert expected in str(caught.value), str(caught.value)
