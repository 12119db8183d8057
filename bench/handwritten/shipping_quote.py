"""Parcel shipping quote, written by hand as a FastAPI endpoint (the benchmark baseline).

The same logic as examples/notebooks/shipping_quote.ipynb: a constrained pydantic request, a
nested pydantic response.

The work takes microseconds and never waits, so the endpoint is ``async def``: FastAPI then
calls it on the event loop instead of handing it to a worker thread (its advice for such code).
"""

import math
from typing import Annotated, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

BASE_RATE = {"standard": 4.90, "express": 9.90, "overnight": 19.90}
PER_KG = {"standard": 0.80, "express": 1.40, "overnight": 2.60}
ZONE_FACTOR = {1: 1.0, 2: 1.15, 3: 1.3, 4: 1.5, 5: 1.8, 6: 2.2, 7: 2.7, 8: 3.3}
DELIVERY_DAYS = {"standard": 4, "express": 2, "overnight": 1}
COUPONS = {"WELCOME10": 0.10, "SPRING5": 0.05}
RESTRICTED_ITEMS = {"battery", "perfume", "aerosol"}
INSURANCE_RATE = 0.015
INSURED_VALUE_PER_ITEM = 50.0

app = FastAPI()


class Parcel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight_kg: Annotated[float, Field(gt=0, le=1000)] = 2.5
    service: Literal["standard", "express", "overnight"] = "standard"
    destination_zone: Annotated[int, Field(ge=1, le=8)] = 3
    items: list[str] = ["book"]
    insured: bool = False
    coupon: str | None = None


class Breakdown(BaseModel):
    base: float
    weight: float
    insurance: float
    discount: float


class Quote(BaseModel):
    currency: str
    total: float
    breakdown: Breakdown


class Delivery(BaseModel):
    service: str
    days: int


class ShippingQuote(BaseModel):
    quote: Quote
    delivery: Delivery
    items: list[str]
    warnings: list[str]


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/shipping_quote")
async def shipping_quote(p: Parcel) -> ShippingQuote:
    warnings = []
    zone = ZONE_FACTOR[p.destination_zone]
    base = BASE_RATE[p.service] * zone
    weight_charge = PER_KG[p.service] * math.ceil(p.weight_kg) * zone
    insurance = INSURANCE_RATE * INSURED_VALUE_PER_ITEM * len(p.items) if p.insured else 0.0
    subtotal = base + weight_charge + insurance
    discount = 0.0
    if p.coupon is not None:
        rate = COUPONS.get(p.coupon.strip().upper())
        if rate is None:
            warnings.append(f"unknown coupon {p.coupon!r} ignored")
        else:
            discount = subtotal * rate
    restricted = sorted({i.lower() for i in p.items} & RESTRICTED_ITEMS)
    if restricted:
        warnings.append("restricted items need a declaration: " + ", ".join(restricted))
    if p.service == "overnight" and p.destination_zone >= 6:
        warnings.append("overnight delivery to zones 6-8 is not guaranteed")
    if not p.items:
        warnings.append("no items declared")
    return ShippingQuote(
        quote=Quote(
            currency="EUR",
            total=round(subtotal - discount, 2),
            breakdown=Breakdown(
                base=round(base, 2),
                weight=round(weight_charge, 2),
                insurance=round(insurance, 2),
                discount=round(discount, 2),
            ),
        ),
        delivery=Delivery(
            service=p.service, days=DELIVERY_DAYS[p.service] + (p.destination_zone - 1) // 2
        ),
        items=p.items,
        warnings=warnings,
    )
