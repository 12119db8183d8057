"""The code of shipping_quote.ipynb, promoted by promoter.

setup() runs the setup cells once at start-up; run() answers one request with the parameters,
handler and response cells. Each block is marked with its notebook cell; the code is the
notebook's own, so edit the notebook and regenerate rather than editing this file.
"""

import math
from typing import Any

from app.models import ShippingQuoteRequest


def setup() -> None:
    """Run the notebook's setup cells once, before the first request."""
    global BASE_RATE, COUPONS, DELIVERY_DAYS, INSURANCE_RATE, INSURED_VALUE_PER_ITEM, PER_KG
    global RESTRICTED_ITEMS, ZONE_FACTOR

    # cell 4 (id e7051abc)
    BASE_RATE = {"standard": 4.90, "express": 9.90, "overnight": 19.90}
    PER_KG = {"standard": 0.80, "express": 1.40, "overnight": 2.60}
    ZONE_FACTOR = {1: 1.0, 2: 1.15, 3: 1.3, 4: 1.5, 5: 1.8, 6: 2.2, 7: 2.7, 8: 3.3}
    DELIVERY_DAYS = {"standard": 4, "express": 2, "overnight": 1}
    COUPONS = {"WELCOME10": 0.10, "SPRING5": 0.05}
    RESTRICTED_ITEMS = {"battery", "perfume", "aerosol"}
    INSURANCE_RATE = 0.015
    INSURED_VALUE_PER_ITEM = 50.0


def run(request: ShippingQuoteRequest) -> Any:
    """Answer one request: the notebook's cells from parameters to response."""
    # parameters: cell 7 (id 5acbe21f)
    weight_kg = request.weight_kg
    service = request.service
    destination_zone = request.destination_zone
    items = request.items
    insured = request.insured
    coupon = request.coupon

    # cell 9 (id eda78d1a)
    warnings = []
    billable_kg = math.ceil(weight_kg)
    base = BASE_RATE[service] * ZONE_FACTOR[destination_zone]
    weight_charge = PER_KG[service] * billable_kg * ZONE_FACTOR[destination_zone]
    insurance = INSURANCE_RATE * INSURED_VALUE_PER_ITEM * len(items) if insured else 0.0
    subtotal = base + weight_charge + insurance

    # cell 10 (id 3299a7b5)
    discount = 0.0
    if coupon is not None:
        rate = COUPONS.get(coupon.strip().upper())
        if rate is None:
            warnings.append(f"unknown coupon {coupon!r} ignored")
        else:
            discount = subtotal * rate

    restricted = sorted({i.lower() for i in items} & RESTRICTED_ITEMS)
    if restricted:
        warnings.append("restricted items need a declaration: " + ", ".join(restricted))
    if service == "overnight" and destination_zone >= 6:
        warnings.append("overnight delivery to zones 6-8 is not guaranteed")
    days = DELIVERY_DAYS[service] + (destination_zone - 1) // 2
    if not items:
        warnings.append("no items declared")

    # response: the last expression of cell 13 (id 5a7fc588)
    return {
        "quote": {
            "currency": "EUR",
            "total": round(subtotal - discount, 2),
            "breakdown": {
                "base": round(base, 2),
                "weight": round(weight_charge, 2),
                "insurance": round(insurance, 2),
                "discount": round(discount, 2),
            },
        },
        "delivery": {"service": service, "days": days},
        "items": items,
        "warnings": warnings,
    }
