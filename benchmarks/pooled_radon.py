"""PartialPooling vs AutoETS on the radon panel, by the package's own cross-validation.

Setup: the bundled (simulated) radon panel, all 1,367 nodes of ``(state / county) * floor``,
``cross_validate(h=12, n_windows=3)`` (cutoffs Dec 2021, 2022, 2023), ``level=[80]``; models
``ets`` (the CLI's AutoETS, additive season), ``pooled`` (``PartialPooling(12)``: predictive mean,
the CLI's ``pooled``) and ``pooled_median`` (``point="median"``); base forecasts and
BottomUp / MinTrace(mint_shrink) reconciliations. Prints MASE, RMSE and 80 % coverage by level,
the ratio pooled / ets at every level, each model's CV seconds in the same run, and the oracle
bottom-level MASE of the simulation's true rates (mean and median of the true Poisson law,
rebuilt from the recipe in ``data/radon/SOURCE.md``): the floor any forecaster can reach.

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


def oracle(Y: pd.DataFrame, hier, h: int, windows: int) -> dict[str, float]:
    """Bottom-level MASE of the true rates' mean and median over the same CV windows."""
    from scipy import stats

    from htsforecast import metrics
    from htsforecast.datasets import _radon as R

    cells = R._cell_probabilities(R._survey())
    months = pd.date_range(R._START, R._END, freq="MS")
    rng = np.random.default_rng(R.PANEL_SEED)
    states = sorted(cells["state"].unique())
    mult = R._state_multipliers(rng, len(states), months)
    idx = cells["state"].map({s: i for i, s in enumerate(states)}).to_numpy()
    lam = (R._TESTS_PER_SURVEY_HOME * cells["n"] * cells["p"]).to_numpy()[:, None] * mult[idx]
    y = rng.poisson(lam).astype(float)
    wide = Y[Y["unique_id"].isin(hier.bottom_ids)].pivot(index="unique_id", columns="ds")["y"]
    assert np.array_equal(np.sort(wide.to_numpy().ravel()), np.sort(y.ravel()))  # same panel
    out = {}
    for name, f in (("oracle mean", lam), ("oracle median", stats.poisson.ppf(0.5, lam))):
        scores = []
        for k in range(windows):
            T = y.shape[1] - h * (windows - k)
            m = metrics.mase(y[:, T : T + h], f[:, T : T + h], y[:, :T], 12)
            scores.append(np.mean(m[np.isfinite(m)]))
        out[name] = float(np.mean(scores))
    return out


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
    tables, secs = [], {}
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
        tab = getattr(tab, "table", tab)  # CVResult (or a plain table from older versions)
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
    print("bottom-level MASE of the true rates:", oracle(Y, hier, args.h, args.windows))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
