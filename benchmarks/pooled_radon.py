"""PartialPooling vs AutoETS on the radon panel, by the package's own cross-validation.

Setup: the bundled (simulated) radon panel, all 1,367 nodes of ``(state / county) * floor``,
``cross_validate(h=12, n_windows=3)`` (cutoffs Dec 2021, 2022, 2023), ``level=[80]``; models
``ets`` (the CLI's AutoETS, additive season), ``pooled`` (``PartialPooling(12)``: predictive mean,
the CLI's ``pooled``) and ``pooled_median`` (``point="median"``); base forecasts and
BottomUp / MinTrace(mint_shrink) reconciliations. Prints MASE, RMSE and 80 % coverage by level,
the ratio pooled / ets at every level, each model's CV seconds in the same run, and the oracle
bottom-level MASE of the simulation's true rates (mean and median of the true Poisson law,
rebuilt from the recipe in ``data/radon/SOURCE.md``).

Why the mean loses on MASE here: MASE is an absolute error, minimised by the predictive median,
and on counts whose mean is below log 2 (about 60 % of the cells) the median is 0. The true mean
scores worse than a forecast biased 5 % low, so the benchmark also prints the MASE of ``c x`` the
true mean and of the true median, and each model's bottom-level bias (``sum(yhat) / sum(lam)``)
and RMSE against the true mean (what a mean forecast should be judged by).

Usage: ``python benchmarks/pooled_radon.py [--windows 3] [--h 12] [--n-jobs 1]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd


def models() -> dict:
    from htsforecast.job import make_models
    from htsforecast.models import PartialPooling

    out = make_models(("ets", "pooled"), 12)
    out["pooled_median"] = PartialPooling(12, point="median")
    return out


def true_rates(Y: pd.DataFrame, hier) -> pd.DataFrame:
    """The simulation's true Poisson means of the bottom series (long ``unique_id, ds, lam``),
    rebuilt from the recipe in ``data/radon/SOURCE.md``; checked against the panel's counts."""
    from htsforecast.datasets import _radon as R

    cells = R._cell_probabilities(R._survey())
    months = pd.date_range(R._START, R._END, freq="MS")
    rng = np.random.default_rng(R.PANEL_SEED)
    states = sorted(cells["state"].unique())
    mult = R._state_multipliers(rng, len(states), months)
    idx = cells["state"].map({s: i for i, s in enumerate(states)}).to_numpy()
    lam = (R._TESTS_PER_SURVEY_HOME * cells["n"] * cells["p"]).to_numpy()[:, None] * mult[idx]
    y = rng.poisson(lam).astype(float)
    ids = [f"state={s}/county={c}/floor={R._FLOORS[f]}" for s, c, f in
           cells[["state", "county", "floor_code"]].itertuples(index=False)]  # fmt: skip
    wide = Y[Y["unique_id"].isin(hier.bottom_ids)].pivot(index="unique_id", columns="ds")["y"]
    assert np.array_equal(wide.loc[ids].to_numpy(), y)  # same panel, same cells
    return pd.DataFrame({"unique_id": np.repeat(ids, len(months)),
                         "ds": np.tile(months.to_numpy(), len(ids)), "lam": lam.ravel()})  # fmt: skip


def oracle(Y: pd.DataFrame, hier, truth: pd.DataFrame, h: int, windows: int) -> pd.Series:
    """Bottom-level MASE, over the same CV windows, of forecasts that know the true rates: the
    true mean ``lam``, ``c * lam`` (biased low) and the true median of Poisson(``lam``)."""
    from scipy import stats

    from htsforecast import metrics

    lam = truth.pivot(index="unique_id", columns="ds", values="lam")
    y = Y[Y["unique_id"].isin(hier.bottom_ids)].pivot(index="unique_id", columns="ds")["y"]
    y = y.loc[lam.index].to_numpy()
    lam = lam.to_numpy()
    cands = {f"{c:g} x true mean": c * lam for c in (1.0, 0.95, 0.9, 0.8)}
    cands["true median"] = stats.poisson.ppf(0.5, lam)
    out = {}
    for name, f in cands.items():
        scores = []
        for k in range(windows):
            T = y.shape[1] - h * (windows - k)
            m = metrics.mase(y[:, T : T + h], f[:, T : T + h], y[:, :T], 12)
            scores.append(np.mean(m[np.isfinite(m)]))
        out[name] = float(np.mean(scores))
    return pd.Series(out, name="bottom MASE")


def bias(cv, truth: pd.DataFrame) -> dict[str, float]:
    """Base bottom-level forecasts against the true rates: ``sum(yhat) / sum(lam)`` over all
    cells and over the sparse ones (mean true rate below log 2, where the median count is 0), and
    the RMSE of ``yhat - lam`` (the error of the forecast as an estimate of the mean)."""
    f = cv.forecasts
    f = f[f["method"] == "base"].merge(truth, on=["unique_id", "ds"])
    sparse = f.groupby("unique_id")["lam"].transform("mean") < np.log(2)
    return {"sum(yhat) / sum(lam)": f["yhat"].sum() / f["lam"].sum(),
            "same, sparse cells": f.loc[sparse, "yhat"].sum() / f.loc[sparse, "lam"].sum(),
            "RMSE vs true mean": float(np.sqrt(np.mean((f["yhat"] - f["lam"]) ** 2)))}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--h", type=int, default=12)
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--save", default=None, help="folder for each model's CV table (CSV)")
    args = p.parse_args()

    from htsforecast import Hierarchy, cross_validate
    from htsforecast.datasets import load_radon_panel
    from htsforecast.job import make_methods

    ds = load_radon_panel()
    hier = Hierarchy.from_formula(ds.formula)
    Y = hier.aggregate(ds.data, freq=ds.freq)
    methods = make_methods(("bu", "mint_shrink"))
    print(f"load average at start: {os.getloadavg()}; {hier}")
    truth = true_rates(Y, hier)
    tables, secs, biases = [], {}, {}
    for name, model in models().items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tab = cross_validate(
                Y, hier, {name: model}, methods, h=args.h, n_windows=args.windows,
                freq=ds.freq, level=[80], metrics=("mase", "rmse", "coverage"),
                n_jobs=args.n_jobs,
            )  # fmt: skip
        secs[name] = time.perf_counter() - t0
        biases[name] = bias(tab, truth)
        tab = tab.table
        tables.append(tab)
        if args.save:
            os.makedirs(args.save, exist_ok=True)
            tab.to_csv(os.path.join(args.save, f"cv_{name}.csv"), index=False)
        print(f"{name}: {secs[name]:.0f} s", flush=True)
    table = pd.concat(tables, ignore_index=True)
    wide = table.pivot_table(index=["metric", "method", "level"], columns="model", values="value",
                             sort=False)  # fmt: skip
    wide["pooled / ets"] = wide["pooled"] / wide["ets"]
    wide["pooled_median / ets"] = wide["pooled_median"] / wide["ets"]
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(wide.round(4).to_string())
    print("\nCV seconds (same run):", {k: round(v) for k, v in secs.items()})
    print("\nbottom level, base forecasts against the true rates:")
    print(pd.DataFrame(biases).T.round(4).to_string())
    print("\nbottom-level MASE of forecasts that know the true rates (same windows):")
    print(oracle(Y, hier, truth, args.h, args.windows).round(4).to_string())
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
