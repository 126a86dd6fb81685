"""fpp3 Table 11.2 with htsforecast, then a pipeline chosen by cross-validation that beats it.

Run: ``python benchmarks/fpp3_tourism.py`` (about 3-4 minutes on 2 cores; ``--search`` reruns the
full candidate search: tens of minutes).

Part 1 - reproduction (fpp3 section 11.4). Australian domestic overnight trips,
``(state / region) * purpose``: 425 series (1 total, 8 states, 4 purposes, 76 regions,
32 state x purpose, 304 bottom). Train 1998 Q1-2015 Q4, test 2016 Q1-2017 Q4 (h = 8). Base
forecasts by ETS at every node, reconciled bottom-up, OLS and MinT-shrink. RMSE and MASE
(seasonal-naive scale, m = 4) per series, averaged per level and over all 425 series, exactly as
fpp3 computes the table (``accuracy() |> summarise(mean(RMSE), mean(MASE))``).

fable's ``ETS()`` and statsforecast's ``AutoETS`` differ (initialisation, parameter bounds,
optimiser, and fable also admits multiplicative seasonality on every series), so the base forecasts -
and through them every reconciled row - differ. Two statsforecast variants are printed:
``model="ZZA"`` (additive season only) and the default ``"ZZZ"``. The book's ranking by RMSE over
all series (OLS < MinT < base < BU) and by MASE (MinT best, BU worst) is what should carry over.

Part 2 - a better pipeline chosen on the training data only. Candidates are base models (ETS
variants, Theta/DOTM, CES, ARIMA) and equal-weight combinations of them, each reconciled by
every method (base, BU, OLS, WLS-struct, WLS-var, MinT-shrink). They are scored by rolling-origin
cross-validation *inside the training period* (``htsforecast.cross_validate``, h = 8, five
origins 2011 Q4-2013 Q4 every two quarters; the test years are never seen). The winner minimises
``(RMSE / best RMSE + MASE / best MASE) / 2`` over all series (both of the book's measures count
equally); that rule was fixed before looking at any test number. Only then is it fitted on the
full training period and scored once on 2016-2017.

The full search (``--search``: 8 base models incl. log-scale and seasonal-drift variants,
all combinations of up to 3, x 7 methods incl. the OLS/MinT blend; ARIMA was left out, too slow
for 5 refits of 425 series on 2 cores) is slow, so by default the CV is rerun on a short list made
of the models in that search's best pipelines (chosen from training-period CV only) and the rule
is applied to that CV. Measured (2 cores, shared machine)::

    CV on 2011Q4-2013Q4 origins (all series)   MASE   RMSE  score
    dotm            ols+mint (OLS/MinT blend)  0.949  40.94  1.007   <- selected
    dotm            ols                        0.962  40.49  1.008
    dotm+dotm_log+ets_zza_log  ols             0.962  40.52  1.009
    dotm            mint                       0.947  41.58  1.014
    ets_zza         mint                       0.970  42.12  (for comparison)

    test 2016-2017, all series                 RMSE 42.97 (book best 43.19: 0.5 % better)
                                               MASE 0.961 (book best 0.98:  1.9 % better)

So the CV-selected pipeline (Dynamic Optimised Theta base forecasts, reconciled with the average
of the OLS and MinT-shrink projections) beats every book pipeline on both measures, but by less
than the 5 % aimed at. The test years saw faster growth than any training window; every
candidate under-forecasts the aggregates (Total RMSE ~1950 vs 1713 for base ETS).

Hindsight check, run *after* the selection and not used by it: scoring all 64 combinations of
{dotm, dotm_log, ets_zza, ets_zza_log, ets_zzz, ces, sdrift} (up to 3) x 7 methods on the test
years, the best RMSE of any candidate is 41.14 (dotm_log+ces+sdrift / OLS, 4.8 % better than the
book) and the best MASE 0.955 (dotm_log / OLS+MinT, 2.6 % better); no candidate is 5 % better
on both. The 5 % target is out of reach of this model family, not only of the CV choice.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from htsforecast import cross_validate, metrics
from htsforecast._forecast import forecast
from htsforecast.datasets import load_tourism
from htsforecast.hierarchy import Hierarchy
from htsforecast.models import ModelOutput, StatsForecastModel
from htsforecast.reconciliation import BottomUp, MinTrace, reconcile
from htsforecast.reconciliation._methods import Fitted

H, M = 8, 4
TRAIN_END = pd.Timestamp("2015-10-01")
ROWS = {  # book row -> htsforecast level
    "Total": "total",
    "Purpose": "purpose",
    "State": "state",
    "Region": "state/region",
    "(State x Purpose)": "state/purpose",
    "Bottom": "state/region/purpose",
}
BOOK_ALL = {  # fpp3 Table 11.2, "All series" row
    "rmse": {"base": 45.96, "bu": 55.28, "mint": 45.61, "ols": 43.19},
    "mase": {"base": 1.04, "bu": 1.08, "mint": 0.98, "ols": 1.03},
}
BOOK_METHODS = {"bu": BottomUp(), "mint": MinTrace("mint_shrink"), "ols": MinTrace("ols")}


@dataclass(frozen=True)
class Blend:
    """Average of several reconciliation methods: ``P = mean(P_k)``, coherent by construction.

    (The average of coherent forecasts is coherent.) Variances are averaged too, an
    approximation used only if intervals are asked for; the scores here are point scores.
    """

    members: tuple[Any, ...]

    def fit(self, problem, yhat) -> Fitted:
        fits = [m.fit(problem, yhat) for m in self.members]
        return Fitted(
            lambda Y, kind, steps: np.mean([f.bottom(Y, kind, steps) for f in fits], axis=0),
            lambda s2: np.mean([f.variance(s2) for f in fits], axis=0),
        )


ALL_METHODS = {
    "bu": BottomUp(),
    "ols": MinTrace("ols"),
    "wls_struct": MinTrace("wls_struct"),
    "wls_var": MinTrace("wls_var"),
    "mint": MinTrace("mint_shrink"),
    "ols+mint": Blend((MinTrace("ols"), MinTrace("mint_shrink"))),
}


@dataclass(frozen=True)
class Combination:
    """Equal-weight average of several htsforecast models (a Forecaster, see models/_protocol).

    Point forecasts and fitted values are the mean of the members'; interval bounds are the mean
    of the members' bounds (a simple approximation, not used by the scores here).
    """

    members: tuple[Any, ...]
    min_obs: int = field(default=1)

    def fit_predict(self, panel, h, level, executor) -> ModelOutput:
        outs = [m.fit_predict(panel, h, level, executor) for m in self.members]
        failures: dict[int, str] = {}
        for out in outs:
            failures.update(out.failures)
        return ModelOutput(
            mean=np.mean([o.mean for o in outs], axis=0),
            fitted=np.mean([o.fitted for o in outs], axis=0),
            lo={lv: np.mean([o.lo[lv] for o in outs], axis=0) for lv in level},
            hi={lv: np.mean([o.hi[lv] for o in outs], axis=0) for lv in level},
            failures=failures,
        )


@dataclass(frozen=True)
class Log:
    """Fit ``model`` to ``log1p(y)`` and back-transform with ``expm1`` (median forecasts).

    Multiplicative structure (seasonal swings proportional to the level, exponential growth)
    becomes additive on the log scale. No bias adjustment, so the point forecast is the median.
    """

    model: Any
    min_obs: int = 7

    def fit_predict(self, panel, h, level, executor) -> ModelOutput:
        out = self.model.fit_predict(
            replace(panel, y=np.log1p(np.clip(panel.y, 0, None))), h, level, executor
        )
        return ModelOutput(
            mean=np.expm1(out.mean),
            fitted=np.expm1(out.fitted),
            lo={lv: np.expm1(v) for lv, v in out.lo.items()},
            hi={lv: np.expm1(v) for lv, v in out.hi.items()},
            failures=out.failures,
        )


@dataclass(frozen=True)
class SeasonalDrift:
    """Seasonal naive plus the average yearly change: ``y_{T+h-m(k+1)} + (k+1) * drift``.

    ``drift`` is the mean of ``y_t - y_{t-m}`` over the history (fpp3 §5.2's drift idea applied
    to seasonal differences).
    """

    m: int = M
    min_obs: int = M + 1

    def fit_predict(self, panel, h, level, executor) -> ModelOutput:
        n = len(panel.ids)
        mean = np.empty((n, h))
        fitted = np.full(len(panel.y), np.nan)
        steps = np.arange(1, h + 1)
        k = (steps - 1) // self.m
        for i in range(n):
            y = panel.y[panel.indptr[i] : panel.indptr[i + 1]]
            d = y[self.m :] - y[: -self.m]
            drift = d.mean()
            mean[i] = y[len(y) + steps - self.m * (k + 1) - 1] + (k + 1) * drift
            fitted[panel.indptr[i] + self.m : panel.indptr[i + 1]] = y[: -self.m] + drift
        return ModelOutput(mean=mean, fitted=fitted)


def base_models() -> dict[str, Any]:
    """The single base models of the search (statsforecast, season length 4)."""
    from statsforecast.models import AutoCES, AutoETS, DynamicOptimizedTheta

    return {
        "ets_zza": StatsForecastModel(AutoETS(season_length=M, model="ZZA")),
        "ets_zzz": StatsForecastModel(AutoETS(season_length=M, model="ZZZ")),
        "ets_damped": StatsForecastModel(AutoETS(season_length=M, model="ZZZ", damped=True)),
        "dotm": StatsForecastModel(DynamicOptimizedTheta(season_length=M)),
        "ces": StatsForecastModel(AutoCES(season_length=M)),
        "dotm_log": Log(StatsForecastModel(DynamicOptimizedTheta(season_length=M))),
        "ets_zza_log": Log(StatsForecastModel(AutoETS(season_length=M, model="ZZA"))),
        "sdrift": SeasonalDrift(),
    }


def combos(singles: dict[str, Any], names: list[str], max_size: int) -> dict[str, Any]:
    out = {n: singles[n] for n in names}
    for k in range(2, max_size + 1):
        for c in combinations(names, k):
            out["+".join(c)] = Combination(tuple(singles[n] for n in c), min_obs=7)
    return out


# ------------------------------------------------------------------------------- scoring
def level_scores(fc: pd.DataFrame, Y: pd.DataFrame, hier: Hierarchy) -> pd.DataFrame:
    """Per-level mean RMSE/MASE of tidy forecasts on the test period (fpp3's table)."""
    ids = hier.node_ids
    train = Y[Y["ds"] <= TRAIN_END].pivot(index="unique_id", columns="ds", values="y").loc[ids]
    test = Y[Y["ds"] > TRAIN_END].pivot(index="unique_id", columns="ds", values="y").loc[ids]
    rows = []
    for (model, method), part in fc.groupby(["model", "method"], sort=False):
        yhat = part.pivot(index="unique_id", columns="ds", values="yhat").loc[ids, test.columns]
        rmse = metrics.rmse(test.to_numpy(), yhat.to_numpy())
        mase = metrics.mase(test.to_numpy(), yhat.to_numpy(), train.to_numpy(), m=M)
        pos = pd.Series(np.arange(len(ids)), index=ids)
        for row, level in [*ROWS.items(), ("All series", None)]:
            sel = pos[hier.levels[level]].to_numpy() if level else pos.to_numpy()
            rows += [(row, model, method, "rmse", rmse[sel].mean()),
                     (row, model, method, "mase", mase[sel].mean())]  # fmt: skip
    return pd.DataFrame(rows, columns=["level", "model", "method", "metric", "value"])


def fit_test(Y, hier, models, methods, n_jobs) -> pd.DataFrame:
    """Fit on the training period, forecast the 8 test quarters, reconcile."""
    base = forecast(Y[Y["ds"] <= TRAIN_END], models, h=H, freq="QS", n_jobs=n_jobs)
    return reconcile(base, hier, methods=methods, level=[]).forecasts


# ------------------------------------------------------------------------------- part 1
def reproduce(Y: pd.DataFrame, hier: Hierarchy, n_jobs: int) -> pd.DataFrame:
    models = {k: v for k, v in base_models().items() if k in ("ets_zza", "ets_zzz")}
    t0 = time.perf_counter()
    scores = level_scores(fit_test(Y, hier, models, BOOK_METHODS, n_jobs), Y, hier)
    print(f"\n== Part 1: fpp3 Table 11.2 (fit + reconcile {time.perf_counter() - t0:.0f} s) ==")
    cols = ["base", "bu", "mint", "ols"]
    for metric in ("rmse", "mase"):
        wide = scores[scores["metric"] == metric].pivot_table(
            index="level", columns=["model", "method"], values="value", sort=False
        )
        table = pd.concat({m: wide[m][cols] for m in ("ets_zza", "ets_zzz")}, axis=1)
        book = pd.DataFrame([BOOK_ALL[metric]], index=["All series"])[cols]
        table = pd.concat([pd.concat({"book (fable ETS)": book}, axis=1), table], axis=1)
        print(f"\n{metric.upper()} (columns: base / bottom-up / MinT-shrink / OLS)")
        print(table.round(2 if metric == "rmse" else 3).to_string(na_rep=""))
        for model in ("ets_zza", "ets_zzz"):
            ours = wide[model].loc["All series", cols]
            gap = 100 * (ours / pd.Series(BOOK_ALL[metric]) - 1)
            print(f"  {model} all-series vs book (%): "
                  + ", ".join(f"{k} {gap[k]:+.1f}" for k in cols))  # fmt: skip
    return scores


# ------------------------------------------------------------------------------- part 2
class Cached:
    """Memoise a model's ``fit_predict`` per panel, so combinations reuse their members' fits."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.min_obs = getattr(model, "min_obs", 1)
        self._cache: dict[tuple, ModelOutput] = {}

    def fit_predict(self, panel, h, level, executor) -> ModelOutput:
        key = (tuple(panel.ids), panel.y.tobytes(), h, tuple(level))
        if key not in self._cache:
            self._cache[key] = self.model.fit_predict(panel, h, level, executor)
        return self._cache[key]


def select(cv: pd.DataFrame) -> pd.DataFrame:
    """All-series CV scores with the selection score; best first."""
    allrows = cv[cv["level"] == "all"].pivot_table(
        index=["model", "method"], columns="metric", values="value"
    )
    allrows["score"] = (
        allrows["rmse"] / allrows["rmse"].min() + allrows["mase"] / allrows["mase"].min()
    ) / 2
    return allrows.sort_values("score")


SHORT_LIST = ["dotm", "dotm_log", "ets_zza", "ets_zza_log"]  # from --search, see docstring


def search(Y: pd.DataFrame, hier: Hierarchy, names: list[str], max_size: int, n_jobs: int):
    """CV on the training period of every single model / combination x method."""
    singles = {k: Cached(v) for k, v in base_models().items() if k in names}
    candidates = combos(singles, names, max_size)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = cross_validate(
            Y[Y["ds"] <= TRAIN_END], hier, candidates, ALL_METHODS, h=H, n_windows=5, step_size=2,
            freq="QS", metrics=("rmse", "mase"), season_length=M, n_jobs=n_jobs,
        ).table  # fmt: skip
    ranked = select(cv)
    print(f"\n== Part 2: CV on training windows only ({len(candidates)} models x "
          f"{len(ALL_METHODS) + 1} methods, {time.perf_counter() - t0:.0f} s) ==")  # fmt: skip
    print(ranked.head(12).round(3).to_string())
    return ranked, candidates


def confirm(Y, hier, ranked, candidates, book, n_jobs) -> None:
    """Fit the CV winner on the whole training period and score it once on the test years."""
    model, method = ranked.index[0]
    methods = {} if method == "base" else {method: ALL_METHODS[method]}
    fc = fit_test(Y, hier, {model: candidates[model]}, methods, n_jobs)
    fc = fc[fc["method"] == method]
    sc = level_scores(fc, Y, hier)
    allr = sc[sc["level"] == "All series"].set_index("metric")["value"]
    best_rmse, best_mase = min(BOOK_ALL["rmse"].values()), min(BOOK_ALL["mase"].values())
    print(f"\nCV-selected pipeline: model={model!r}, method={method!r}")
    print(sc.pivot_table(index="level", columns="metric", values="value", sort=False).round(3))
    for metric, ref in (("rmse", best_rmse), ("mase", best_mase)):
        gain = 100 * (1 - allr[metric] / ref)
        verdict = "meets" if gain >= 5 else "misses"
        print(f"  all-series {metric.upper()} {allr[metric]:.3f} vs book best {ref}: "
              f"{gain:+.1f} % better ({verdict} the 5 % target)")  # fmt: skip
    if book is None:
        return
    ours = book[(book["level"] == "All series")].pivot_table(
        index=["model", "method"], columns="metric", values="value"
    )
    print("\nfor reference, the same test scores of the reproduction pipelines:")
    print(ours.round(3).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", action="store_true", help="full candidate search (slow)")
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--max-size", type=int, default=3, help="largest combination searched")
    parser.add_argument("--models", default=None, help="comma-separated candidate base models")
    parser.add_argument("--skip-repro", action="store_true", help="skip part 1")
    args = parser.parse_args()
    ds = load_tourism()
    hier = Hierarchy.from_formula(ds.formula)
    Y = hier.aggregate(ds.data)
    print(f"tourism: {hier.n_nodes} series ({hier.n_bottom} bottom), {Y['ds'].nunique()} "
          f"quarters; train to {TRAIN_END:%Y-%m}, test {H} quarters")  # fmt: skip
    book = None if args.skip_repro else reproduce(Y, hier, args.n_jobs)
    names = list(base_models()) if args.search else SHORT_LIST
    names = args.models.split(",") if args.models else names
    ranked, candidates = search(Y, hier, names, args.max_size, args.n_jobs)
    confirm(Y, hier, ranked, candidates, book, args.n_jobs)


if __name__ == "__main__":
    main()
