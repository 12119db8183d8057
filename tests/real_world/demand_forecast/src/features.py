"""Feature helpers shared by the forecast notebooks."""

import numpy as np
import pandas as pd


def add_lags(frame: pd.DataFrame, column: str, lags: int) -> pd.DataFrame:
    out = frame.copy()
    for lag in range(1, lags + 1):
        out[f"{column}_lag{lag}"] = out[column].shift(lag)
    return out.dropna().reset_index(drop=True)


def fit_trend(values: pd.Series) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.arange(len(values)), values.to_numpy(), 1)
    return float(slope), float(intercept)
