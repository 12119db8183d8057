"""Loan amortization schedule, written by hand as a FastAPI endpoint (the benchmark baseline).

The same logic as examples/notebooks/loan_calculator.ipynb: numpy for the month-by-month
schedule, pandas for the yearly summary, returned as a list of pydantic rows.
"""

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

app = FastAPI()


class Loan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: float = 250000.0
    annual_rate: float = 0.045
    years: int = 30
    extra_payment: float = 0.0


class YearRow(BaseModel):
    year: int
    interest: float
    principal: float
    balance: float


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/loan_calculator")
def loan_calculator(loan: Loan) -> list[YearRow]:
    n_months = loan.years * 12
    monthly_rate = loan.annual_rate / 12
    if monthly_rate > 0:
        payment = loan.principal * monthly_rate / (1 - (1 + monthly_rate) ** -n_months)
    else:
        payment = loan.principal / n_months
    interest = np.zeros(n_months)
    principal_paid = np.zeros(n_months)
    balance = np.zeros(n_months)
    remaining = loan.principal
    for m in range(n_months):
        if remaining <= 0:
            break
        interest[m] = remaining * monthly_rate
        principal_paid[m] = min(payment + loan.extra_payment - interest[m], remaining)
        remaining -= principal_paid[m]
        balance[m] = remaining
    schedule = pd.DataFrame(
        {
            "month": np.arange(1, n_months + 1),
            "interest": interest,
            "principal": principal_paid,
            "balance": balance,
        }
    )
    yearly = (
        schedule.assign(year=(schedule["month"] - 1) // 12 + 1)
        .groupby("year", as_index=False)
        .agg(
            interest=("interest", "sum"),
            principal=("principal", "sum"),
            balance=("balance", "last"),
        )
    )
    yearly = yearly[(yearly["interest"] > 0) | (yearly["principal"] > 0)]
    yearly["year"] = yearly["year"].astype(int)
    columns = ["interest", "principal", "balance"]
    yearly[columns] = yearly[columns].round(2)
    return [YearRow(**row) for row in yearly.to_dict(orient="records")]
