"""Write the data files and models of the real-world corpus (deterministic, a few KB each).

    python tests/real_world/make_data.py [ROOT]

ROOT defaults to this folder. The committed files came from this script; tests/test_real_world.py
runs it again in its copy of the corpus, so pickles, parquet files and joblib models always match
the installed pandas, pyarrow and scikit-learn.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

HERE = Path(__file__).resolve().parent


def _write(path: Path, frame: pd.DataFrame, kind: str = "csv") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_pickle(path)


def churn(root: Path, rng: np.random.Generator) -> None:
    n = 60
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(1, 72, n)
    charges = np.round(rng.uniform(20, 110, n), 2)
    churned = (contract == "Month-to-month") & (tenure < 24) | (charges > 100)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "tenure": tenure,
            "contract": contract,
            "monthly_charges": charges,
            "churn": np.where(churned, "Yes", "No"),
        }
    )
    _write(root / "churn" / "data" / "customers.csv", frame)


def houses(root: Path, rng: np.random.Generator) -> pd.DataFrame:
    n = 80
    sqft = rng.integers(600, 3200, n)
    bedrooms = rng.integers(1, 6, n)
    year = rng.integers(1950, 2022, n)
    hood = rng.choice(["Riverside", "Old Town", "Hillcrest"], n)
    bonus = pd.Series(hood).map({"Riverside": 25000, "Old Town": 5000, "Hillcrest": 40000})
    price = 50000 + sqft * 120 + bedrooms * 8000 + (year - 1950) * 600 + bonus.to_numpy()
    price = np.round(price + rng.normal(0, 15000, n), -2)
    frame = pd.DataFrame(
        {
            "sqft": sqft,
            "bedrooms": bedrooms,
            "year_built": year,
            "neighborhood": hood,
            "price": price,
        }
    )
    _write(root / "house_prices" / "data" / "train.parquet", frame, "parquet")
    features = frame[["sqft", "bedrooms", "year_built"]]
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(features, frame["price"])
    (root / "house_prices" / "models").mkdir(parents=True, exist_ok=True)
    joblib.dump(model, root / "house_prices" / "models" / "model.joblib")
    return frame


def titanic(root: Path, rng: np.random.Generator) -> None:
    n = 90
    pclass = rng.choice([1, 2, 3], n, p=[0.25, 0.25, 0.5])
    sex = rng.choice(["male", "female"], n)
    age = np.round(rng.uniform(1, 70, n))
    age[rng.choice(n, 8, replace=False)] = np.nan
    fare = np.round(
        np.where(pclass == 1, 80, np.where(pclass == 2, 25, 9)) * rng.uniform(0.6, 1.6, n), 2
    )
    survived = ((sex == "female") & (pclass < 3)) | (rng.uniform(size=n) < 0.2)
    frame = pd.DataFrame(
        {
            "PassengerId": np.arange(1, n + 1),
            "Survived": survived.astype(int),
            "Pclass": pclass,
            "Sex": sex,
            "Age": age,
            "Fare": fare,
        }
    )
    _write(root / "titanic" / "data" / "train.csv", frame)


def sales(root: Path, rng: np.random.Generator) -> None:
    days = pd.date_range("2024-01-01", periods=56, freq="D")
    rows = [
        {
            "date": day.date().isoformat(),
            "region": region,
            "units": int(rng.integers(5, 40)),
            "unit_price": float(round(rng.uniform(8, 12), 2)),
        }
        for day in days
        for region in ("north", "south")
    ]
    _write(root / "sales_weekly" / "data" / "daily_sales.csv", pd.DataFrame(rows))
    frame = pd.DataFrame(rows)
    frame["date"] = pd.to_datetime(frame["date"])
    _write(root / "store_dashboard" / "data" / "sales.parquet", frame, "parquet")


def customers(root: Path, rng: np.random.Generator) -> None:
    centres = np.array([[500, 2], [2500, 8], [6000, 20]])
    points = np.vstack([c + rng.normal(0, [300, 1.5], (20, 2)) for c in centres])
    frame = pd.DataFrame(
        {"annual_spend": points[:, 0].round(2), "visits": points[:, 1].round(1).clip(0)}
    )
    _write(root / "customer_segments" / "data" / "customers.pkl", frame, "pickle")


def orders(root: Path, rng: np.random.Generator) -> None:
    frame = pd.DataFrame(
        {
            "order_id": np.arange(1000, 1040),
            "amount": np.round(rng.uniform(5, 300, 40), 2),
            "status": rng.choice(["paid", "refunded", "pending"], 40, p=[0.8, 0.1, 0.1]),
        }
    )
    _write(root / "order_checks" / "data" / "orders.csv", frame)


def penguins(root: Path, rng: np.random.Generator) -> None:
    species = {
        "Adelie": (38.8, 18.3, 190),
        "Chinstrap": (48.8, 18.4, 196),
        "Gentoo": (47.5, 15.0, 217),
    }
    rows = []
    for name, (bill, depth, flipper) in species.items():
        for _ in range(25):
            rows.append(
                {
                    "species": name,
                    "bill_length_mm": round(bill + rng.normal(0, 2.5), 1),
                    "bill_depth_mm": round(depth + rng.normal(0, 0.9), 1),
                    "flipper_length_mm": round(flipper + rng.normal(0, 6)),
                }
            )
    frame = pd.DataFrame(rows)
    _write(root / "penguins" / "data" / "penguins.csv", frame)
    features = frame[["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]]
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, frame["species"])
    (root / "penguins" / "models").mkdir(parents=True, exist_ok=True)
    joblib.dump(model, root / "penguins" / "models" / "penguin_clf.joblib")


REVIEWS = """\
Great coffee and friendly staff, the espresso was rich and the pastries fresh.
Slow service today but the coffee was still great and the music was nice.
The pastries were stale and the coffee lukewarm; staff seemed tired.
Lovely place to work, good wifi, great coffee, fair prices.
Espresso too bitter for me, but the oat latte was smooth and the staff friendly.
Crowded at lunch, noisy, though the sandwiches and coffee were good.
"""


def reviews(root: Path) -> None:
    folder = root / "review_words" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reviews.txt").write_text(REVIEWS)
    (folder / "stopwords.txt").write_text("the\nand\nwas\nwere\nbut\nfor\nme\nat\nto\ntoo\n")


def inventory(root: Path, rng: np.random.Generator) -> None:
    skus = [f"A-{100 + i}" for i in range(8)]
    frame = pd.DataFrame(
        {
            "sku": skus,
            "on_hand": rng.integers(0, 120, 8),
            "daily_demand": np.round(rng.uniform(1, 9, 8), 1),
            "lead_time_days": rng.integers(2, 10, 8),
        }
    )
    _write(root / "inventory" / "data" / "stock.csv", frame)
    (root / "inventory" / "config").mkdir(parents=True, exist_ok=True)
    settings = {"safety_factor": 1.5, "pack_size": 12, "warehouse": "WH-1"}
    (root / "inventory" / "config" / "settings.json").write_text(
        json.dumps(settings, indent=2) + "\n"
    )


def sensors(root: Path, rng: np.random.Generator) -> None:
    readings = rng.normal(20, 0.5, (4, 200))
    readings[2, [37, 120, 121]] += [6.0, -5.5, 7.0]
    readings[0, 150] += 4.0
    (root / "sensor_anomaly" / "data").mkdir(parents=True, exist_ok=True)
    np.save(root / "sensor_anomaly" / "data" / "readings.npy", readings.round(3))


def loans(root: Path, rng: np.random.Generator) -> None:
    grades = {"A": 0, "B": 1, "C": 2, "D": 3}
    folder = root / "loan_scoring" / "models"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "grade_encoder.pkl", "wb") as f:
        pickle.dump(grades, f)
    card = {"intercept": -2.1, "income_k": -0.012, "debt_ratio": 3.4, "grade": 0.45}
    joblib.dump(card, folder / "scorecard.joblib")
    frame = pd.DataFrame(
        {
            "income_k": np.round(rng.uniform(20, 150, 30), 1),
            "debt_ratio": np.round(rng.uniform(0, 0.9, 30), 2),
            "grade": rng.choice(list(grades), 30),
        }
    )
    frame.loc[[3, 11], "income_k"] = np.nan
    _write(root / "loan_scoring" / "data" / "applicants.csv", frame)


def experiment(root: Path, rng: np.random.Generator) -> None:
    variant = np.repeat(["control", "treatment"], 50)
    spend = np.where(variant == "control", rng.normal(42, 8, 100), rng.normal(46, 8, 100))
    frame = pd.DataFrame({"user_id": np.arange(100), "variant": variant, "spend": spend.round(2)})
    _write(root / "ab_test" / "data" / "experiment.csv", frame)


def kaggle(root: Path, rng: np.random.Generator) -> None:
    n = 70
    frame = pd.DataFrame(
        {
            "Id": np.arange(n),
            "temp": np.round(rng.uniform(-5, 35, n), 1),
            "humidity": rng.integers(20, 100, n),
            "weekend": rng.integers(0, 2, n),
        }
    )
    frame["rentals"] = (100 + 6 * frame.temp - 0.8 * frame.humidity + 40 * frame.weekend).round()
    _write(root / "bike_rentals" / "input" / "train.csv", frame)
    _write(root / "bike_rentals" / "input" / "test.csv", frame.drop(columns="rentals").head(10))


def catalog(root: Path) -> None:
    frame = pd.DataFrame(
        {
            "sku": ["EM-1", "EM-2", "GR-1", "KT-9"],
            "title": [
                "Espresso Machine",
                "The espresso machine (2023 model)",
                "Coffee Grinder",
                "Kettle, new",
            ],
        }
    )
    _write(root / "text_cleaning" / "data" / "catalog.csv", frame)


def round_three(root: Path) -> None:
    """The data of the issue-22 notebooks (a generator of their own: the others keep theirs)."""
    rng = np.random.default_rng(22)
    days = pd.date_range("2024-01-01", "2024-06-30", freq="D")
    orders = pd.DataFrame(
        {
            "date": rng.choice(days, 400).astype("datetime64[ns]"),
            "category": rng.choice(["books", "games", "garden"], 400),
            "amount": np.round(rng.gamma(2.0, 18.0, 400), 2),
        }
    ).sort_values("date")
    orders["date"] = orders["date"].dt.date
    _write(root / "monthly_revenue" / "data" / "orders.csv", orders)
    products = pd.DataFrame(
        {
            "sku": [f"P-{i:03d}" for i in range(40)],
            "category": rng.choice(["kitchen", "outdoor", "office"], 40),
            "price": np.round(rng.uniform(4, 120, 40), 2),
        }
    )
    _write(root / "product_spotlight" / "data" / "products.csv", products)
    survey = pd.DataFrame(
        {
            "respondent": range(1, 121),
            "team": rng.choice(["support", "sales", "platform"], 120),
            "score": rng.integers(1, 11, 120),
        }
    )
    _write(root / "survey_bootstrap" / "data" / "survey.csv", survey)
    flowers = pd.DataFrame(
        {
            "petal_length": np.round(np.r_[rng.normal(1.5, 0.2, 30), rng.normal(4.5, 0.4, 30)], 2),
            "petal_width": np.round(np.r_[rng.normal(0.3, 0.1, 30), rng.normal(1.4, 0.2, 30)], 2),
            "kind": ["small"] * 30 + ["large"] * 30,
        }
    )
    _write(root / "colab_quickstart" / "data" / "flowers.csv", flowers)
    stores = [
        ("north", "N-1"),
        ("north", "N-2"),
        ("south", "S-1"),
        ("south", "S-2"),
        ("south", "S-3"),
    ]
    sales = pd.DataFrame(
        [
            {
                "region": region,
                "store": store,
                "product": product,
                "units": int(rng.integers(1, 30)),
                "revenue": float(round(rng.uniform(20, 400), 2)),
            }
            for region, store in stores
            for product in ("kettle", "toaster", "blender")
        ]
    )
    _write(root / "store_kpis" / "data" / "sales.csv", sales)
    weeks = pd.date_range("2024-01-07", periods=30, freq="W")
    demand = pd.DataFrame(
        {"week": weeks.date, "units": (200 + 3 * np.arange(30) + rng.normal(0, 8, 30)).round()}
    )
    _write(root / "demand_forecast" / "data" / "raw" / "demand.csv", demand)
    regions = pd.DataFrame({"code": ["N", "S", "E"], "name": ["north", "south", "east"]})
    _write(root / "team_share" / "regions.csv", regions)
    visits = pd.DataFrame(
        {
            "page": rng.choice(["home", "pricing", "docs", "blog"], 200),
            "seconds": rng.integers(3, 300, 200),
        }
    )
    _write(root / "site_visits" / "data" / "visits.csv", visits)


def main(root: Path) -> None:
    rng = np.random.default_rng(20240611)
    churn(root, rng)
    houses(root, rng)
    titanic(root, rng)
    sales(root, rng)
    customers(root, rng)
    orders(root, rng)
    penguins(root, rng)
    reviews(root)
    inventory(root, rng)
    sensors(root, rng)
    loans(root, rng)
    experiment(root, rng)
    kaggle(root, rng)
    catalog(root)
    round_three(root)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
