"""Synthetic M5-like hierarchies and cheap deterministic base forecasts for the benchmarks.

Bottom series are ``store × item`` sales: 3 states, 10 stores (4/3/3 as in M5), 3 categories,
``n_bottom / 10`` items split evenly over the categories, every store selling every item. Two
structures over the same bottom series:

- grouped: ``(state / store) * (cat / item)`` (9 levels, as M5),
- nested:  ``state / store / item`` (a strict tree: the item id is made unique per store).

Base forecasts and in-sample fitted values are a *noisy seasonal naive* of every node (the value
12 periods earlier times ``1 + 0.05 ε``, independent ε per node and period), so the forecasts are
incoherent, the residuals are correlated across the hierarchy, and no model fitting time is
involved. Everything is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from htsforecast import Hierarchy

__all__ = ["Synthetic", "make_synthetic", "STORES"]

SEASON = 12
FREQ = "MS"
MODEL = "snaive"
STORES = {"CA": ["CA_1", "CA_2", "CA_3", "CA_4"], "TX": ["TX_1", "TX_2", "TX_3"]}
STORES["WI"] = ["WI_1", "WI_2", "WI_3"]
FORMULAS = {"grouped": "(state / store) * (cat / item)", "nested": "state / store / item"}


@dataclass(frozen=True)
class Synthetic:
    """One benchmark problem.

    Attributes
    ----------
    hier : Hierarchy
        Fitted hierarchy (``hier.node_ids`` is the row order of the arrays below).
    Y_hat_df : DataFrame
        Nixtla-style forecasts ``unique_id, ds, snaive`` (``h`` rows per node).
    Y_df : DataFrame
        ``unique_id, ds, y, snaive`` (in-sample actuals and fitted values, ``T`` rows per node).
    yhat, y, fitted : ndarray
        The same numbers as arrays in node order: (n, h), (n, T), (n, T).
    """

    hier: Hierarchy
    Y_hat_df: pd.DataFrame
    Y_df: pd.DataFrame
    yhat: np.ndarray
    y: np.ndarray
    fitted: np.ndarray


def _bottom_values(n_items: int, n_periods: int, rng: np.random.Generator) -> np.ndarray:
    """Positive seasonal series (n_stores * n_items, n_periods): level × season × trend × noise."""
    m = 10 * n_items
    t = np.arange(n_periods)
    level = np.exp(rng.normal(3.0, 1.0, size=(m, 1)))
    phase = rng.uniform(0, SEASON, size=(m, 1))
    amp = rng.uniform(0.1, 0.5, size=(m, 1))
    season = 1.0 + amp * np.sin(2 * np.pi * (t[None, :] + phase) / SEASON)
    trend = 1.0 + rng.normal(0, 0.002, size=(m, 1)) * t[None, :]
    # a common (store-wide) shock makes the residuals correlated across series
    common = rng.normal(0, 0.05, size=(1, n_periods))
    noise = np.exp(common + rng.normal(0, 0.15, size=(m, n_periods)))
    return level * season * np.clip(trend, 0.2, None) * noise


def _bottom_frame(n_items: int, values: np.ndarray, structure: str) -> pd.DataFrame:
    n_periods = values.shape[1]
    stores = [(s, st) for s, sts in STORES.items() for st in sts]
    items = np.arange(n_items)
    cats = np.array(["FOODS", "HOBBIES", "HOUSEHOLD"])[items % 3]
    item_ids = np.char.add(np.char.add(cats, "_"), np.char.zfill(items.astype(str), 5))
    state = np.repeat([s for s, _ in stores], n_items)
    store = np.repeat([st for _, st in stores], n_items)
    cat = np.tile(cats, len(stores))
    item = np.tile(item_ids, len(stores))
    if structure == "nested":
        item = np.char.add(np.char.add(store.astype(str), "/"), item.astype(str))
    keys = {"state": state, "store": store, "cat": cat, "item": item}
    if structure == "nested":
        keys.pop("cat")
    dates = pd.date_range("2010-01-01", periods=n_periods, freq=FREQ)
    frame = {k: np.repeat(v, n_periods) for k, v in keys.items()}
    frame["ds"] = np.tile(dates.to_numpy(), len(state))
    frame["y"] = values.ravel()
    return pd.DataFrame(frame)


def make_synthetic(
    n_bottom: int, structure: str = "grouped", T: int = 120, h: int = 12, seed: int = 0
) -> Synthetic:
    """Build the hierarchy, the Nixtla frames and the arrays for ``n_bottom`` bottom series.

    Parameters
    ----------
    n_bottom : int
        Multiple of 10 (10 stores × n_bottom / 10 items).
    structure : {"grouped", "nested"}
    T, h : int
        In-sample periods and forecast horizon.
    seed : int
        The same seed gives the same bottom values for both structures.
    """
    if n_bottom % 10:
        raise ValueError(f"n_bottom must be a multiple of 10, got {n_bottom}.")
    n_items = n_bottom // 10
    rng = np.random.default_rng(seed)
    values = _bottom_values(n_items, SEASON + T, rng)
    hier = Hierarchy.from_formula(FORMULAS[structure])
    long = hier.aggregate(_bottom_frame(n_items, values, structure), freq=FREQ)
    n = hier.n_nodes
    Y = long["y"].to_numpy().reshape(n, SEASON + T)  # node order, dates ascending
    dates = pd.DatetimeIndex(long["ds"].iloc[: SEASON + T])
    noise = np.random.default_rng(seed + 1).normal(0, 0.05, size=(n, T + h))
    y = Y[:, SEASON:]
    fitted = Y[:, :T] * (1 + noise[:, :T])
    last = Y[:, -SEASON:]
    yhat = np.tile(last, (1, -(-h // SEASON)))[:, :h] * (1 + noise[:, T:])
    ids = np.asarray(hier.node_ids, dtype=object)
    fc_dates = pd.date_range(dates[-1], periods=h + 1, freq=FREQ)[1:]
    Y_hat_df = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, h),
            "ds": np.tile(fc_dates.to_numpy(), n),
            MODEL: yhat.ravel(),
        }
    )
    Y_df = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, T),
            "ds": np.tile(dates[SEASON:].to_numpy(), n),
            "y": y.ravel(),
            MODEL: fitted.ravel(),
        }
    )
    return Synthetic(hier, Y_hat_df, Y_df, yhat, y, fitted)
