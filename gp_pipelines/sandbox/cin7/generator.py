"""Deterministic data for the three sandbox instances.

Everything comes from `random.Random` streams seeded from (seed, instance, purpose), so the same seed and size
give byte-identical responses. Master data, stock and small documents are built at start-up; sales and
purchases are planned at start-up (a compact tuple each) and their full documents are built on first read
from a per-document seed, which is what lets `large` (~200,000 sales) start quickly.
"""

from __future__ import annotations

import random

from . import sales
from .model import (
    CURRENCIES,
    DAY_MS,
    SandboxInstance,
    VirtualClock,
    floor_day,
    fmt_business_date,
    fmt_stamp,
    fx_rate,
    new_guid,
    seeded_rng,
)
from .store import DocRecord, InstanceStore, Row, RowRecord, StockCell

SIZE_TABLE: dict[str, dict[str, int]] = {
    "small": {"sales": 100, "products": 60, "customers": 30, "suppliers": 8, "purchases": 30,
              "transfers": 10, "adjustments": 8, "finished": 6},
    "medium": {"sales": 5000, "products": 500, "customers": 600, "suppliers": 40, "purchases": 1200,
               "transfers": 200, "adjustments": 120, "finished": 80},
    "large": {"sales": 67000, "products": 2000, "customers": 5000, "suppliers": 150, "purchases": 12000,
              "transfers": 1500, "adjustments": 800, "finished": 600},
}

_TAX = {"au": (0.10, "GST on Income"), "nz": (0.15, "GST on Income"), "us": (0.0, "Sales Tax Exempt")}
_PLACES = {
    "au": ("Australia", [("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000"), ("Brisbane", "QLD", "4000"),
                         ("Perth", "WA", "6000"), ("Adelaide", "SA", "5000")]),
    "nz": ("New Zealand", [("Auckland", "Auckland", "1010"), ("Wellington", "Wellington", "6011"),
                           ("Christchurch", "Canterbury", "8011"), ("Hamilton", "Waikato", "3204")]),
    "us": ("United States", [("New York", "NY", "10001"), ("Newark", "NJ", "07102"), ("Chicago", "IL", "60601"),
                             ("Austin", "TX", "73301"), ("Los Angeles", "CA", "90001")]),
}
_LOCATION_NAMES = {
    "au": ["Main Warehouse", "Melbourne 3PL", "Brisbane Store", "Perth Overflow"],
    "nz": ["Auckland Warehouse", "Christchurch 3PL", "Wellington Store", "Hamilton Overflow"],
    "us": ["East Coast DC", "West Coast 3PL", "New York Store", "Chicago Overflow"],
}
_CARRIERS = {
    "au": ["Australia Post", "StarTrack", "Couriers Please", "Sendle", "DHL Express"],
    "nz": ["NZ Post", "CourierPost", "Aramex NZ", "Mainfreight", "DHL Express"],
    "us": ["UPS", "FedEx", "USPS", "OnTrac", "DHL Express"],
}
_TIER_NAMES = ["Retail", "Wholesale", "Distributor", "Online", "VIP", "Tier 6", "Tier 7", "Tier 8", "Tier 9",
               "Tier 10"]
_TIER_FACTORS = [1.0, 0.8, 0.7, 0.95, 0.9, 0.85, 0.75, 0.65, 0.6, 0.55]
_CATEGORIES = [("TEA", "Tea", ["Green Tea", "Black Tea", "Herbal Tea", "Oolong"]),
               ("COF", "Coffee", ["Espresso Beans", "Filter Roast", "Cold Brew", "Decaf Blend"]),
               ("CUP", "Drinkware", ["Ceramic Mug", "Travel Cup", "Glass Tumbler", "Teacup Set"]),
               ("BRW", "Brewing", ["Pour-over Kit", "French Press", "Kettle", "Grinder"]),
               ("SNK", "Snacks", ["Shortbread", "Almond Biscotti", "Dark Chocolate", "Granola"])]
_ADJECTIVES = ["Classic", "Organic", "Premium", "Everyday", "Reserve", "Smoky", "Bright", "Mountain", "Coastal",
               "Heritage", "Velvet", "Golden"]
_PACK_SIZES = ["100g", "250g", "500g", "1kg", "Std", "Lge"]
_BRANDS = ["Good People", "Leaf & Bean", "Harbour Roasters", "Kiln Works", "Northwind"]
_CUSTOMER_STEMS = ["Blue Door", "Corner", "Harbour", "Maple", "Riverside", "Summit", "Oak & Iron", "Lantern",
                   "Parkside", "Union", "Wattle", "Kauri", "Copper Pot", "Fern", "Granite", "Silver Birch",
                   "Little", "Golden Hour", "Brick Lane", "Seaside"]
_CUSTOMER_KINDS = ["Cafe", "Grocers", "Trading", "Deli", "Kitchen", "Provisions", "Market", "Co-op", "Hotel",
                   "Emporium"]
_FIRST = ["Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn"]
_LAST = ["Nguyen", "Smith", "Patel", "Brown", "Wilson", "Taylor", "Martin", "Lee", "Walker", "Hall"]

# Plan stage -> the sale Status its document ends in (checked by a test against the built documents).
SALE_STAGE_STATUS = {
    "DRAFT": "DRAFT", "ORDERING": "ORDERING", "ORDERED": "ORDERED", "BACKORDERED": "BACKORDERED",
    "PICKING": "PICKING", "PACKED": "PACKED", "PARTIAL": "ORDERED", "SHIPPED": "SHIPPED",
    "INVOICED": "INVOICED", "COMPLETED": "COMPLETED", "CREDITED": "CREDITED", "VOIDED": "VOIDED",
}
_RECENT_WEIGHTS = {"DRAFT": 8, "ORDERING": 6, "ORDERED": 14, "BACKORDERED": 8, "PICKING": 6, "PACKED": 5,
                   "PARTIAL": 6, "SHIPPED": 8, "INVOICED": 12, "COMPLETED": 20, "CREDITED": 1, "VOIDED": 6}
_OLD_WEIGHTS = {"COMPLETED": 84, "CREDITED": 5, "VOIDED": 6, "INVOICED": 4, "BACKORDERED": 1}

PURCHASE_STAGES = {"DRAFT": "DRAFT", "ORDERED": "ORDERED", "RECEIVED": "RECEIVED", "INVOICED": "INVOICED",
                   "COMPLETED": "COMPLETED", "VOIDED": "VOIDED"}


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _ean13(rng: random.Random) -> str:
    digits = [9, 3] + [rng.randrange(10) for _ in range(10)]
    check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    return "".join(map(str, digits)) + str(check)


def _price(x: float) -> float:
    """Retail-looking prices: x.95 above 10, two decimals below."""
    return round(max(1.0, round(x)) - 0.05, 2) if x >= 10 else round(x, 2)


def build_catalogue(seed: int, count: int) -> list[Row]:
    """The SKUs every instance shares: name, category, brand, barcode and a USD list price."""
    rng = seeded_rng(seed, "catalogue")
    items = []
    for n in range(count):
        code, category, nouns = _CATEGORIES[n % len(_CATEGORIES)]
        items.append({
            "SKU": f"{code}-{n + 1:05d}",
            "Name": f"{rng.choice(_ADJECTIVES)} {rng.choice(nouns)} {rng.choice(_PACK_SIZES)}",
            "Category": category, "Brand": rng.choice(_BRANDS), "Barcode": _ean13(rng),
            "UsdPrice": round(rng.uniform(4, 120), 2),
        })
    return items


def build_instance(instance: SandboxInstance, seed: int, size: str, clock: VirtualClock,
                   catalogue: list[Row] | None = None) -> InstanceStore:
    counts = SIZE_TABLE[size]
    anchor = floor_day(clock.start_ms)
    tax_rate, tax_rule = _TAX[instance.key]
    store = InstanceStore(instance, seed, clock, tax_rate, tax_rule, anchor)
    catalogue = catalogue if catalogue is not None else build_catalogue(seed, int(counts["products"] * 0.8))
    gen = _Generator(store, seed, counts)
    gen.reference_books()
    gen.products(catalogue)
    gen.parties()
    gen.stock()
    gen.sale_plans()
    gen.purchase_plans()
    gen.transfers_adjustments_assemblies()
    store.doc_builders = {"sale": gen.build_sale, "purchase": gen.build_purchase}
    store.generator = gen
    store.header_builders = {"sale": sale_row, "purchase": purchase_row}
    return store


def sale_row(record: DocRecord, doc: Row) -> Row:
    return sales.sale_header(doc, record.extra["location_id"], record.extra["order_date"])


def purchase_row(record: DocRecord, doc: Row) -> Row:
    invoice = doc["Invoice"]
    return {
        "ID": doc["ID"], "OrderNumber": doc["OrderNumber"], "Status": doc["Status"], "Type": doc["Type"],
        "OrderDate": doc["OrderDate"], "RequiredBy": doc["RequiredBy"], "Supplier": doc["Supplier"],
        "SupplierID": doc["SupplierID"], "BaseCurrency": doc["BaseCurrency"],
        "SupplierCurrency": doc["SupplierCurrency"], "OrderStatus": doc["Order"]["Status"],
        "StockReceivedStatus": doc["StockReceived"]["Status"], "InvoiceStatus": invoice["Status"],
        "InvoiceNumber": invoice.get("InvoiceNumber", ""), "InvoiceDate": invoice.get("InvoiceDate"),
        "InvoiceDueDate": invoice.get("InvoiceDueDate"), "InvoiceAmount": invoice.get("Total", 0.0),
        "PaidAmount": invoice.get("Paid", 0.0), "CombinedReceivingStatus": doc["CombinedReceivingStatus"],
        "CombinedInvoiceStatus": doc["CombinedInvoiceStatus"], "CombinedPaymentStatus": doc["CombinedPaymentStatus"],
        "CreditNoteNumber": "", "CreditNoteStatus": "NOT AVAILABLE", "UnstockStatus": "NOT AVAILABLE",
        "DropShipTaskID": None, "BlindReceipt": False, "IsServiceOnly": False,
        "LastUpdatedDate": doc["LastUpdatedDate"],
    }


class _BuildEnv:
    """The `SaleEnv` used to replay a historical sale: its own ids, numbers, time steps and stock answers."""

    def __init__(self, store: InstanceStore, rng: random.Random, idx: int, start: int, end: int,
                 backorder: bool) -> None:
        self.store = store
        self.base_currency = store.base_currency
        self.timezone = store.timezone
        self.tax_rate = store.tax_rate
        self.tax_rule = store.tax_rule
        self.rng = rng
        self.idx = idx
        self.t = start
        self.step = max(1, (end - start) // 16)
        self.end = end
        self.backorder = backorder
        self.numbers: dict[str, int] = {}

    def now_ms(self) -> int:
        self.t = min(self.t + self.step, self.end)
        return self.t

    def new_id(self) -> str:
        return new_guid(self.rng)

    def next_number(self, kind: str) -> str:
        n = self.numbers[kind] = self.numbers.get(kind, 0) + 1
        return f"{kind}-{self.idx + 1:05d}" + (f"-{n}" if n > 1 else "")

    def product(self, product_id: str | None, sku: str | None) -> Row | None:
        return self.store.origin_products.get(str(product_id))

    def location_id(self, name: str) -> str:
        return self.store.location_id(name)

    def location(self, key: str) -> Row | None:
        return self.store.location(key)

    def allocate(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> float:
        if self.backorder:
            self.backorder = False  # one short line is enough to make the sale BACKORDERED
            return float(int(quantity // 2))
        return quantity

    def held(self, sale_id: str, product_id: str) -> dict[str, float]:
        return {}

    def available(self, location_id: str, product_id: str) -> float:
        return float("inf")  # history's picks always find their stock (see release())

    def deallocate(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> None:
        """See release()."""

    def release(self, sale_id: str) -> None:
        """History does not move the generated stock levels (they are generated on their own)."""

    def consume(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> None:
        """See release()."""

    def restock(self, location_id: str, product_id: str, quantity: float) -> None:
        """See release()."""


class _Generator:
    def __init__(self, store: InstanceStore, seed: int, counts: dict[str, int]) -> None:
        self.store = store
        self.seed = seed
        self.key = store.instance.key
        self.counts = counts
        self.anchor = store.anchor_ms
        self.rng = seeded_rng(seed, self.key, "master")

    def _guid(self) -> str:
        return new_guid(self.rng)

    def _past(self, min_days: float, max_days: float) -> int:
        return self.anchor - int(self.rng.uniform(min_days, max_days) * DAY_MS)

    # ------------------------------------------------------------ reference books

    def reference_books(self) -> None:
        rng, store = self.rng, self.store
        names = _LOCATION_NAMES[self.key][: rng.randint(2, 4)]
        country, cities = _PLACES[self.key]
        for i, name in enumerate(names):
            city, state, post = cities[i % len(cities)]
            bins = [{"ID": self._guid(), "Name": f"Bin {chr(65 + b)}{b + 1}"} for b in range(rng.randint(0, 3))]
            store.locations.append({
                "ID": self._guid(), "Name": name, "IsDefault": i == 0,
                # The fourth location exists only to exercise IsDeprecated; nothing new goes there.
                "IsDeprecated": i == 3, "Bins": bins, "ParentID": None, "ParentName": "",
                "PickZones": "", "AddressLine1": f"{10 + i * 7} Industrial Way", "AddressLine2": "",
                "AddressCitySuburb": city, "AddressStateProvince": state, "AddressZipPostCode": post,
                "AddressCountry": country, "IsShopfloor": False, "IsCoMan": False, "IsStaging": False,
                "FixedAssetsLocation": False, "ReferenceCount": 0,
            })
        store.price_tiers = [{"Code": i + 1, "Name": n} for i, n in enumerate(_TIER_NAMES)]
        store.carriers = [{"CarrierID": self._guid(), "Description": c} for c in _CARRIERS[self.key]]
        store.webhooks = []
        self.active_locations = [loc for loc in store.locations if not loc["IsDeprecated"]]

    # ------------------------------------------------------------ products

    def products(self, catalogue: list[Row]) -> None:
        rng, store = self.rng, self.store
        usd_to_base = fx_rate(store.base_currency, "USD", self.anchor)
        items = [dict(item) for item in catalogue if rng.random() < 0.92]
        for n in range(self.counts["products"] - len(items)):
            code, category, nouns = _CATEGORIES[n % len(_CATEGORIES)]
            items.append({"SKU": f"{self.key.upper()}-{code}-{n + 1:04d}",
                          "Name": f"{rng.choice(_ADJECTIVES)} {rng.choice(nouns)} ({self.key.upper()} only)",
                          "Category": category, "Brand": rng.choice(_BRANDS), "Barcode": _ean13(rng),
                          "UsdPrice": round(rng.uniform(4, 120), 2)})
        records = []
        for item in items:
            created = self._past(0, 1100) if rng.random() < 0.15 else self._past(760, 1100)
            modified = created + int(rng.random() ** 2 * (self.anchor - created))
            tier1 = _price(item["UsdPrice"] * usd_to_base)
            tiers = {name: round(tier1 * f, 2) for name, f in zip(_TIER_NAMES, _TIER_FACTORS, strict=True)}
            deprecated = rng.random() < 0.05
            row: Row = {
                "ID": self._guid(), "SKU": item["SKU"], "Name": item["Name"], "Category": item["Category"],
                "Brand": item["Brand"], "Type": "Stock", "CostingMethod": "FIFO",
                "DropShipMode": "No Drop Ship", "DefaultLocation": self.active_locations[0]["Name"],
                "Length": 0.0, "Width": 0.0, "Height": 0.0, "Weight": round(rng.uniform(0.1, 3), 2),
                "UOM": "Item", "WeightUnits": "kg", "DimensionsUnits": "cm", "Barcode": item["Barcode"],
                "MinimumBeforeReorder": 0.0, "ReorderQuantity": 0.0,
                "PriceTier1": tiers[_TIER_NAMES[0]],
                **{f"PriceTier{i + 1}": tiers[name] for i, name in enumerate(_TIER_NAMES) if i},
                "PriceTiers": tiers, "AverageCost": round(tier1 * rng.uniform(0.35, 0.55), 4),
                "ShortDescription": "", "Description": f"{item['Name']} by {item['Brand']}",
                "InternalNote": "", "AdditionalAttribute1": "", "AdditionalAttribute2": "",
                "AttributeSet": "", "DiscountRule": "", "Tags": item["Category"].lower(),
                "Status": "Deprecated" if deprecated else "Active", "StockLocator": "",
                "COGSAccount": "5000", "RevenueAccount": "4000", "ExpenseAccount": "",
                "InventoryAccount": "1400", "PurchaseTaxRule": store.tax_rule.replace("Income", "Expenses"),
                "SaleTaxRule": store.tax_rule, "LastModifiedOn": fmt_stamp(modified), "Sellable": True,
                "PickZones": "", "BillOfMaterial": False, "AutoAssembly": False, "AutoDisassembly": False,
            }
            records.append((created, row, modified, deprecated))
        records.sort(key=lambda r: r[0])
        for created, row, modified, deprecated in records:
            store.add("products", RowRecord(row, created, modified, deprecated=deprecated))
            store.origin_products[row["ID"]] = dict(row)
        self.product_ids = [row["ID"] for _, row, _, dep in records if not dep] or [records[0][1]["ID"]]

    # ------------------------------------------------------------ customers and suppliers

    def party(self, name: str, base_share: float) -> tuple[int, Row, int, bool]:
        rng, store = self.rng, self.store
        others = [c for c in CURRENCIES if c != store.base_currency]
        currency = store.base_currency if rng.random() < base_share else rng.choice(others)
        country, cities = _PLACES[self.key]
        city, state, post = rng.choice(cities)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        domain = name.lower().replace("&", "and").replace(" ", "")[:20]
        created = self._past(0, 1100) if rng.random() < 0.3 else self._past(760, 1100)
        modified = created + int(rng.random() ** 2 * (self.anchor - created))
        deprecated = rng.random() < 0.06
        row: Row = {
            "ID": self._guid(), "Name": name, "Status": "Deprecated" if deprecated else "Active",
            "Currency": currency, "PaymentTerm": rng.choice(["30 days", "14 days", "20th of following month",
                                                             "Cash on delivery"]),
            "Discount": rng.choice([0.0, 0.0, 5.0, 10.0]), "TaxRule": store.tax_rule,
            "TaxNumber": str(rng.randrange(10**10, 10**11)), "Comments": "", "AttributeSet": "",
            "AdditionalAttribute1": "", "AdditionalAttribute2": "", "Tags": "",
            "LastModifiedOn": fmt_stamp(modified),
            "Addresses": [{"ID": self._guid(), "Line1": f"{rng.randint(1, 400)} {rng.choice(_LAST)} Street",
                           "Line2": "", "City": city, "State": state, "Postcode": post,
                           "Country": country if currency == store.base_currency else currency[:2],
                           "Type": "Business", "DefaultForType": True}],
            "Contacts": [{"ID": self._guid(), "Name": f"{first} {last}", "JobTitle": "Buyer",
                          "Phone": f"+{rng.randint(1, 99)} {rng.randrange(10**7, 10**8)}", "MobilePhone": "",
                          "Fax": "", "Email": f"{first.lower()}.{last.lower()}@{domain}.example",
                          "Website": "", "Comment": "", "Default": True, "IncludeInEmail": True}],
        }
        return created, row, modified, deprecated

    def parties(self) -> None:
        rng, store = self.rng, self.store
        customers = []
        for n in range(self.counts["customers"]):
            name = f"{rng.choice(_CUSTOMER_STEMS)} {rng.choice(_CUSTOMER_KINDS)} {n + 1}"
            created, row, modified, dep = self.party(name, 0.5)
            row.update({
                "PriceTier": rng.choice(_TIER_NAMES[:4]), "Location": self.active_locations[0]["Name"],
                "Carrier": rng.choice(store.carriers)["Description"], "SalesRepresentative": rng.choice(_FIRST),
                "CreditLimit": float(rng.choice([0, 5000, 10000, 25000])), "IsOnCreditHold": False,
                "AccountReceivable": "1100", "RevenueAccount": "4000", "ProductPrices": [],
            })
            customers.append((created, row, modified, dep))
        customers.sort(key=lambda r: r[0])
        for created, row, modified, dep in customers:
            store.add("customers", RowRecord(row, created, modified, deprecated=dep))
            store.origin_customers.append(dict(row))
        suppliers = []
        for n in range(self.counts["suppliers"]):
            name = f"{rng.choice(_BRANDS)} Supply {n + 1}"
            created, row, modified, dep = self.party(name, 0.4)
            row.update({"AccountPayable": "2100", "Discount": 0.0})
            suppliers.append((created, row, modified, dep))
        suppliers.sort(key=lambda r: r[0])
        for created, row, modified, dep in suppliers:
            store.add("suppliers", RowRecord(row, created, modified, deprecated=dep))
            store.origin_suppliers.append(dict(row))

    # ------------------------------------------------------------ stock

    def stock(self) -> None:
        rng, store = self.rng, self.store
        for record in store.collections["products"]:
            product = record.row()
            batch_tracked = rng.random() < 0.15
            for loc in rng.sample(self.active_locations, rng.randint(1, len(self.active_locations))):
                bins = [b["Name"] for b in loc["Bins"]] or [""]
                for bin_name in rng.sample(bins, rng.randint(1, min(2, len(bins)))):
                    on_hand = float(rng.choice([0, rng.randint(1, 40), rng.randint(20, 500)]))
                    batch = f"B{rng.randint(1000, 9999)}" if batch_tracked else ""
                    expiry = fmt_business_date(self.anchor + rng.randint(60, 700) * DAY_MS) if batch else None
                    store.add_cell(StockCell(
                        product["ID"], loc["ID"], bin_name, batch, expiry, on_hand,
                        float(int(on_hand * rng.choice([0, 0, 0.1, 0.3]))),
                        float(rng.choice([0, 0, 0, 24, 48])), float(rng.choice([0, 0, 0, 0, 12]))))

    # ------------------------------------------------------------ sales

    def sale_plans(self) -> None:
        rng, store = seeded_rng(self.seed, self.key, "sale-plans"), self.store
        n = self.counts["sales"]
        created = sorted(self.anchor - int(rng.random() ** 1.3 * 730 * DAY_MS) - 60_000 for _ in range(n))
        stages = []
        for c in created:
            age_days = (self.anchor - c) / DAY_MS
            stages.append(_weighted(rng, _RECENT_WEIGHTS if age_days < 21 or rng.random() < 0.02
                                    else _OLD_WEIGHTS))
        # Small data sets would otherwise miss rare statuses: give each missing stage to a recent sale.
        recent = list(range(max(0, n - 40), n))
        for stage in SALE_STAGE_STATUS:
            if stage not in stages and recent:
                stages[recent.pop(rng.randrange(len(recent)))] = stage
        delays = {"DRAFT": 1, "ORDERING": 2, "ORDERED": 3, "BACKORDERED": 5, "PICKING": 4, "PACKED": 5,
                  "PARTIAL": 10, "SHIPPED": 8, "INVOICED": 30, "COMPLETED": 45, "CREDITED": 90, "VOIDED": 10}
        customers = store.collections["customers"]
        live_customers = [i for i, r in enumerate(customers) if not r.deprecated] or [0]
        for idx, (c, stage) in enumerate(zip(created, stages, strict=True)):
            updated = min(c + int(rng.uniform(0.01, delays[stage]) * DAY_MS),
                          self.anchor - rng.randint(1000, 3 * 3_600_000))
            updated = max(updated, c + 1000)
            customer_idx = rng.choice(live_customers)
            location = rng.choice(self.active_locations)
            lines = max(1, min(20, int(rng.expovariate(1 / 4)) + 1))
            if stage == "PARTIAL":
                lines = max(2, lines)  # one task ships half the lines, the other is still being picked
            advanced = stage == "PARTIAL" or (stage in ("COMPLETED", "INVOICED", "SHIPPED")
                                              and lines >= 2 and rng.random() < 0.25)
            sale_id = new_guid(rng)
            plan = (idx, stage, customer_idx, lines, advanced)
            extra = {"location_id": location["ID"], "location": location["Name"],
                     "order_date": fmt_business_date(c, store.timezone)}
            store.add("sales", DocRecord(store, "sale", sale_id, c, updated, plan, SALE_STAGE_STATUS[stage], extra))
        for kind in ("SO", "INV", "CR"):
            store.counters[kind] = n

    def build_sale(self, record: DocRecord) -> Row:
        idx, stage, customer_idx, n_lines, advanced = record.plan
        store = self.store
        rng = seeded_rng(self.seed, self.key, "sale", idx)
        env = _BuildEnv(store, rng, idx, record.created_ms, record.modified_ms, stage == "BACKORDERED")
        customer = store.origin_customers[customer_idx]
        location = next(loc for loc in store.locations if loc["ID"] == record.extra["location_id"])
        rate = fx_rate(store.base_currency, customer["Currency"], record.created_ms)
        reference = f"PO{rng.randint(1000, 99999)}" if rng.random() < 0.6 else ""
        external_id = f"#{1000 + idx}" if rng.random() < 0.4 else ""
        channel = rng.choice(["", "", "Shopify", "B2B Portal"])
        if channel == "Shopify" and not external_id:
            external_id = f"#{1000 + idx}"  # a web store's order always carries its order name
        doc = sales.create_sale(env, record.id, customer, location, {
            "SaleOrderDate": record.extra["order_date"], "CustomerReference": reference,
            "ExternalID": external_id, "SourceChannel": channel,
        }, rate)
        if stage != "DRAFT":
            products = rng.sample(self.product_ids, min(n_lines, len(self.product_ids)))
            lines = []
            for pid in products:
                p = store.origin_products[pid]
                lines.append({"ProductID": pid, "Quantity": float(rng.choice([1, 1, 2, 3, 4, 6, 12, 24])),
                              "Price": round(p["PriceTier1"] / rate, 2),
                              "Discount": float(rng.choice([0, 0, 0, 5, 10]))})
            authorise = stage != "ORDERING" and not (stage == "VOIDED" and rng.random() < 0.3)
            sales.set_order(env, doc, {"Status": "AUTHORISED" if authorise else "DRAFT", "Lines": lines})
            self._advance_sale(env, doc, stage, advanced, rng)
        doc["LastModifiedOn"] = fmt_stamp(record.modified_ms)
        return doc

    def _advance_sale(self, env: _BuildEnv, doc: Row, stage: str, advanced: bool, rng: random.Random) -> None:
        store = self.store
        carrier = doc["Carrier"] or store.carriers[0]["Description"]

        def ship(task: Row) -> None:
            sales.set_pack(env, doc, task, {"Status": "AUTHORISED"})
            tracking = f"{carrier[:2].upper()}{rng.randrange(10**9, 10**10)}"
            sales.set_ship(env, doc, task, {"Status": "AUTHORISED", "Lines": [
                {"Carrier": carrier, "Box": "Box 1", "TrackingNumber": tracking,
                 "TrackingURL": f"https://track.example/{tracking}", "IsShipped": True}]})

        if stage == "VOIDED":
            sales.void_sale(env, doc)
        elif stage == "PICKING":
            sales.set_pick(env, doc, sales.task_for_stage(env, doc, doc["ID"]), {"Status": "DRAFT"})
        elif stage == "PACKED":
            task = sales.task_for_stage(env, doc, doc["ID"])
            sales.set_pick(env, doc, task, {"AutoPickMode": "AUTOPICK"})
            sales.set_pack(env, doc, task, {"Status": "AUTHORISED"})
        elif stage in ("PARTIAL", "SHIPPED", "INVOICED", "COMPLETED", "CREDITED"):
            order_lines = doc["Order"]["Lines"]
            if advanced:
                half = max(1, len(order_lines) // 2)
                first = sales.add_fulfilment(env, doc)
                sales.set_pick(env, doc, first, {"Status": "AUTHORISED", "Lines": [
                    {"ProductID": line["ProductID"], "Quantity": line["Quantity"]} for line in order_lines[:half]]})
                ship(first)
                second = sales.add_fulfilment(env, doc)
                if stage == "PARTIAL":
                    sales.set_pick(env, doc, second, {"Status": "DRAFT"})
                    return
                sales.set_pick(env, doc, second, {"AutoPickMode": "AUTOPICK"})
                ship(second)
            else:
                task = sales.task_for_stage(env, doc, doc["ID"])
                sales.set_pick(env, doc, task, {"AutoPickMode": "AUTOPICK"})
                ship(task)
            if stage == "SHIPPED":
                return
            invoice_ms = env.t
            invoice_rate = fx_rate(store.base_currency, doc["CustomerCurrency"], invoice_ms)
            invoice = sales.add_invoice(env, doc, {"Status": "AUTHORISED"}, invoice_rate)
            if stage in ("COMPLETED", "CREDITED"):
                sales.add_payment(env, doc, invoice, invoice["Total"], invoice_rate)
            if stage == "CREDITED":
                sales.add_credit_note(env, doc, invoice_rate)

    # ------------------------------------------------------------ purchases

    def purchase_plans(self) -> None:
        rng, store = seeded_rng(self.seed, self.key, "purchase-plans"), self.store
        n = self.counts["purchases"]
        created = sorted(self.anchor - int(rng.random() * 730 * DAY_MS) - 60_000 for _ in range(n))
        for idx, c in enumerate(created):
            recent = (self.anchor - c) < 30 * DAY_MS
            stage = _weighted(rng, {"DRAFT": 10, "ORDERED": 25, "RECEIVED": 20, "INVOICED": 20, "COMPLETED": 20,
                                    "VOIDED": 5} if recent else {"COMPLETED": 90, "VOIDED": 6, "INVOICED": 4})
            updated = max(c + 1000, min(c + int(rng.uniform(0.01, 30) * DAY_MS), self.anchor - 1000))
            supplier_idx = rng.randrange(len(store.origin_suppliers))
            location = rng.choice(self.active_locations)
            plan = (idx, stage, supplier_idx, rng.randint(1, 8))
            extra = {"location_id": location["ID"], "location": location["Name"]}
            store.add("purchases", DocRecord(store, "purchase", new_guid(rng), c, updated, plan,
                                             PURCHASE_STAGES[stage], extra))
        store.counters["PO"] = n

    def build_purchase(self, record: DocRecord) -> Row:
        idx, stage, supplier_idx, n_lines = record.plan
        store = self.store
        rng = seeded_rng(self.seed, self.key, "purchase", idx)
        supplier = store.origin_suppliers[supplier_idx]
        rate = fx_rate(store.base_currency, supplier["Currency"], record.created_ms)
        tz = store.timezone
        order_date = fmt_business_date(record.created_ms, tz)
        lines = []
        for pid in rng.sample(self.product_ids, min(n_lines, len(self.product_ids))):
            p = store.origin_products[pid]
            qty = float(rng.choice([12, 24, 48, 96, 120]))
            price = round(p["AverageCost"] / rate, 2)
            total = sales.money(qty * price)
            lines.append({"ProductID": pid, "SKU": p["SKU"], "Name": p["Name"], "Quantity": qty, "Price": price,
                          "Discount": 0.0, "Tax": sales.money(total * store.tax_rate),
                          "TaxRule": p["PurchaseTaxRule"], "SupplierSKU": "", "Comment": "", "Total": total})
        before_tax = sales.money(sum(line["Total"] for line in lines))
        tax = sales.money(sum(line["Tax"] for line in lines))
        ordered = stage not in ("DRAFT",)
        received = stage in ("RECEIVED", "INVOICED", "COMPLETED")
        invoiced = stage in ("INVOICED", "COMPLETED")
        voided = stage == "VOIDED"
        receive_date = fmt_business_date(record.modified_ms, tz)
        invoice: Row = {"Status": "NOT AVAILABLE", "Lines": [], "Payments": [], "Total": 0.0, "Paid": 0.0}
        if invoiced:
            invoice = {"InvoiceNumber": f"BILL-{idx + 1:05d}", "InvoiceDate": receive_date,
                       "InvoiceDueDate": receive_date, "Status": "PAID" if stage == "COMPLETED" else "AUTHORISED",
                       "CurrencyConversionRate": fx_rate(store.base_currency, supplier["Currency"],
                                                         record.modified_ms),
                       "Lines": [dict(line, Account="1400") for line in lines], "AdditionalCharges": [],
                       "Payments": [], "TotalBeforeTax": before_tax, "Tax": tax,
                       "Total": sales.money(before_tax + tax),
                       "Paid": sales.money(before_tax + tax) if stage == "COMPLETED" else 0.0}
        return {
            "ID": record.id, "Supplier": supplier["Name"], "SupplierID": supplier["ID"],
            "Contact": supplier["Contacts"][0]["Name"], "Phone": supplier["Contacts"][0]["Phone"],
            "InventoryAccount": "1400", "BlindReceipt": False,
            "Type": "Advanced Purchase" if idx % 3 == 0 else "Simple Purchase", "Approach": "INVOICE",
            "BaseCurrency": store.base_currency, "SupplierCurrency": supplier["Currency"], "CurrencyRate": rate,
            "TaxRule": store.tax_rule.replace("Income", "Expenses"), "TaxCalculation": "Exclusive",
            "Terms": supplier["PaymentTerm"], "RequiredBy": fmt_business_date(record.created_ms + 14 * DAY_MS, tz),
            "Location": record.extra["location"], "OrderNumber": f"PO-{idx + 1:05d}", "OrderDate": order_date,
            "Status": PURCHASE_STAGES[stage], "Note": "", "DropShipTaskID": None,
            "LastUpdatedDate": fmt_stamp(record.modified_ms),
            "CombinedReceivingStatus": "FULLY RECEIVED" if received else "NOT RECEIVED",
            "CombinedInvoiceStatus": "INVOICED" if invoiced else "NOT INVOICED",
            "CombinedPaymentStatus": "PAID" if stage == "COMPLETED" else "UNPAID",
            "Order": {"Status": "VOIDED" if voided else ("AUTHORISED" if ordered else "DRAFT"), "Memo": "",
                      "Lines": lines, "AdditionalCharges": [], "TotalBeforeTax": before_tax, "Tax": tax,
                      "Total": sales.money(before_tax + tax)},
            "StockReceived": {"Status": "AUTHORISED" if received else "NOT AVAILABLE", "Lines": [
                {"ProductID": line["ProductID"], "SKU": line["SKU"], "Name": line["Name"],
                 "Quantity": line["Quantity"], "Location": record.extra["location"],
                 "LocationID": record.extra["location_id"], "BatchSN": "", "ExpiryDate": None,
                 "Date": receive_date, "Received": True} for line in lines] if received else []},
            "Invoice": invoice,
            "CreditNote": {"Status": "NOT AVAILABLE", "Lines": []},
            "ManualJournals": {"Status": "NOT AVAILABLE", "Lines": []},
            "InventoryMovements": [], "Attachments": [],
        }

    # ------------------------------------------------------------ transfers, adjustments, finished goods

    def transfers_adjustments_assemblies(self) -> None:
        rng, store = seeded_rng(self.seed, self.key, "stock-moves"), self.store
        tz = store.timezone
        products = store.origin_products

        def stock_lines(count: int) -> list[Row]:
            return [{"ProductID": pid, "SKU": products[pid]["SKU"], "ProductName": products[pid]["Name"],
                     "Quantity": float(rng.randint(1, 60)), "Cost": products[pid]["AverageCost"]}
                    for pid in rng.sample(self.product_ids, min(count, len(self.product_ids)))]

        def times(n: int) -> list[int]:
            return sorted(self.anchor - int(rng.random() * 730 * DAY_MS) - 60_000 for _ in range(n))

        for i, c in enumerate(times(self.counts["transfers"])):
            a, b = rng.sample(self.active_locations, 2) if len(self.active_locations) > 1 else (
                self.active_locations[0], self.active_locations[0])
            status = rng.choice(["COMPLETED", "COMPLETED", "COMPLETED", "IN TRANSIT", "DRAFT", "VOIDED"])
            header = {"TaskID": new_guid(rng), "Number": f"TR-{i + 1:05d}", "Status": status,
                      "From": a["ID"], "FromLocation": a["Name"], "To": b["ID"], "ToLocation": b["Name"],
                      "DepartureDate": fmt_business_date(c, tz),
                      "CompletionDate": fmt_business_date(c + 3 * DAY_MS, tz) if status == "COMPLETED" else None,
                      "CostDistributionType": "Cost", "InTransitAccount": "1450", "Reference": ""}
            lines = [dict(line, TransferQuantity=line.pop("Quantity")) for line in stock_lines(rng.randint(1, 6))]
            detail = {**header, "RequiredByDate": fmt_business_date(c + 5 * DAY_MS, tz), "SkipOrder": True,
                      "Lines": lines, "Order": None, "ManualJournals": {"Status": "NOT AVAILABLE", "Lines": []}}
            store.add("transfers", RowRecord(header, c, c, "TaskID", detail))
        store.counters["TR"] = self.counts["transfers"]
        for i, c in enumerate(times(self.counts["adjustments"])):
            status = rng.choice(["COMPLETED", "COMPLETED", "DRAFT", "VOIDED"])
            header = {"TaskID": new_guid(rng), "StocktakeNumber": f"ST-{i + 1:05d}", "Status": status,
                      "EffectiveDate": fmt_business_date(c, tz), "Account": "5100",
                      "Reference": rng.choice(["Damaged", "Count correction", "Samples", "Found stock"])}
            loc = rng.choice(self.active_locations)
            lines = [dict(line, Adjustment=line.pop("Quantity") * rng.choice([-1, 1]), Location=loc["Name"],
                          LocationID=loc["ID"], BatchSN="", ExpiryDate=None)
                     for line in stock_lines(rng.randint(1, 5))]
            detail = {**header, "ExistingStockLines": lines, "NewStockLines": [], "ZeroStockLines": []}
            store.add("adjustments", RowRecord(header, c, c, "TaskID", detail))
        store.counters["ST"] = self.counts["adjustments"]
        for i, c in enumerate(times(self.counts["finished"])):
            pid = rng.choice(self.product_ids)
            loc = rng.choice(self.active_locations)
            qty = float(rng.randint(5, 100))
            header = {"TaskID": new_guid(rng), "AssemblyNumber": f"FG-{i + 1:05d}",
                      "Status": rng.choice(["COMPLETED", "COMPLETED", "DRAFT", "VOIDED"]), "ProductID": pid,
                      "ProductCode": products[pid]["SKU"], "ProductName": products[pid]["Name"], "Quantity": qty,
                      "Location": loc["Name"], "LocationID": loc["ID"], "Date": fmt_business_date(c, tz),
                      "BatchSN": "", "ExpiryDate": None, "UnitCost": products[pid]["AverageCost"]}
            components = stock_lines(rng.randint(1, 4))
            detail = {**header, "OrderLines": components, "PickLines": [dict(x) for x in components],
                      "Transactions": [], "WIPAccount": "1460", "WIPDate": header["Date"],
                      "Bin": "", "BinID": None}
            store.add("finished_goods", RowRecord(header, c, c, "TaskID", detail))
        store.counters["FG"] = self.counts["finished"]

