"""Recovery of known regressor effects: models with regressors vs the same models without.

Simulated weekly store sales (``htsforecast.datasets.simulate_promotions``): promotions (+40),
price (-3 per unit), state holidays (+30, ``holidays`` package) and state temperature (+0.5 per
degree) on top of level, yearly season and AR(1) noise. The last ``h`` weeks are held out; the
regressors are aggregated with declared rules (promo ``sum``, price ``wmean``, holiday ``share``,
temperature a state-level ``LevelCovariate`` with ``mean`` above the states) and their actual
future values are given as ``X_future``. Prints RMSE per level, with and without regressors, the
gain, and the fit times; the peer is the same model without regressors, in the same run.

Run: ``python benchmarks/exog_recovery.py [--states 3] [--stores 3] [--weeks 169] [--h 13]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from statsforecast.models import AutoARIMA

from htsforecast import Hierarchy, LevelCovariate, forecast, reconcile
from htsforecast.calendar import CountryHolidays
from htsforecast.datasets import simulate_promotions
from htsforecast.models import ProphetModel, StatsForecastModel
from htsforecast.reconciliation import MinTrace


def setup(states: int, stores: int, weeks: int, h: int, seed: int):
    sim = simulate_promotions(n_states=states, stores_per_state=stores, n_weeks=weeks, seed=seed)
    cut = np.sort(sim.data["ds"].unique())[-h]
    hist, fut = sim.data[sim.data["ds"] < cut], sim.data[sim.data["ds"] >= cut]
    exog = {
        "promo": "sum",
        "price": "wmean",
        "holiday": CountryHolidays("US", subdivision_col="state", rule="share"),
        "temperature": LevelCovariate(sim.temperature, on="state", rule="mean"),
    }
    hier = Hierarchy.from_formula(sim.formula)
    Y = hier.aggregate(hist, freq=sim.freq, exog=exog)
    X = hier.aggregate(fut.drop(columns="y"), freq=sim.freq, exog=exog, target_col=None)
    return hier, Y, X, hier.aggregate(fut, freq=sim.freq), sim.freq


def rmse_by_level(fc: pd.DataFrame, actual: pd.DataFrame, hier: Hierarchy) -> pd.Series:
    m = fc.merge(actual, on=["unique_id", "ds"])
    per_node = np.sqrt(((m["yhat"] - m["y"]) ** 2).groupby(m["unique_id"]).mean())
    return per_node.groupby(per_node.index.map(hier.level_of)).mean()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--states", type=int, default=3)
    p.add_argument("--stores", type=int, default=3)
    p.add_argument("--weeks", type=int, default=169)
    p.add_argument("--h", type=int, default=13)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    models = {
        "AutoARIMA": StatsForecastModel(AutoARIMA(season_length=1)),
        "Prophet": ProphetModel(weekly_seasonality=False, daily_seasonality=False),
    }
    rows = []
    for seed in range(args.seeds):
        hier, Y, X, actual, freq = setup(args.states, args.stores, args.weeks, args.h, seed)
        for name, model in models.items():
            for label, kw in [("with", {"X_future": X}), ("without", {})]:
                data = Y if kw else Y[["unique_id", "ds", "y"]]
                t0 = time.perf_counter()
                base = forecast(data, {name: model}, h=args.h, freq=freq, **kw)
                secs = time.perf_counter() - t0
                rec = reconcile(base, hier, {"mint": MinTrace("mint_shrink")}).forecasts
                for method, fc in [("base", base.forecasts), ("mint", rec[rec.method == "mint"])]:
                    for level, value in rmse_by_level(fc, actual, hier).items():
                        rows.append((seed, name, method, label, level, value, secs))
    df = pd.DataFrame(rows, columns=["seed", "model", "method", "x", "level", "rmse", "secs"])
    table = df.pivot_table(index=["model", "method", "level"], columns="x", values="rmse")
    table["gain_%"] = 100 * (1 - table["with"] / table["without"])
    order = {lv: i for i, lv in enumerate(hier.levels)}
    table = table.reset_index().sort_values(
        ["model", "method", "level"], key=lambda s: s.map(order) if s.name == "level" else s
    )
    n = hier.n_nodes
    print(f"{args.states} states x {args.stores} stores ({n} nodes), {args.weeks - args.h} weeks "
          f"of history, h = {args.h}, mean RMSE per level over {args.seeds} seeds")  # fmt: skip
    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    secs = df.groupby(["model", "x"])["secs"].mean().unstack()
    secs["ratio"] = secs["with"] / secs["without"]
    print("\nfit time per run (s), all nodes:")
    print(secs.to_string(float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
