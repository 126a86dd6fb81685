"""Accuracy of the ``--models auto --methods all`` pipeline against published figures.

Run: ``python benchmarks/accuracy.py [--only tourism,prison,tourism_small,radon] [--n-jobs 2]`` (heavy: tens of
minutes on two cores; run it alone).

Each data set goes through :func:`htsforecast.job.run` exactly as ``htsforecast run --models auto
--methods all`` would, on the *training* data only: rolling-origin cross-validation of every
reconciliation method (the job's ``cv_windows``), the job's choice of (model, method) by MASE,
then the forecasts of that pipeline. Those forecasts are then scored once on the held-out
periods with the book's definitions (per-series scores averaged over all series, as fpp3):

* **tourism** (fpp3 §11.4): ``(state / region) * purpose``, 425 series, train to 2015 Q4,
  h = 8. RMSE and MASE (m = 4). Book best cells: RMSE 43.19 (OLS), MASE 0.98 (MinT); goals
  RMSE <= 41.0 and MASE <= 0.93. Calibration: coverage of the 80 % / 95 % intervals over all
  425 series x 8 steps, and at h = 1 and h = 8 (goal 75-85 % / 90-97 %, drop <= 10 points).
* **prison** (fpp3 §11.7): ``gender * legal * state`` (summed over indigenous status),
  Count / 1000, train to 2014 Q4, h = 8. MASE (m = 4), goal <= 1.96 (book MinT); CRPS skill
  score against seasonal naive (per series ``100 (1 - CRPS / CRPS_snaive)`` averaged over all
  series; our CRPS is that of the distribution the interval bounds of every level describe,
  :func:`htsforecast.metrics.crps_quantiles`, exactly the Gaussian CRPS when the intervals are
  Gaussian and right for calibrated or bootstrap ones too), goal >= 11.3 (book's best, BU).
* **radon** (bundled simulated panel): the plain default job (``htsforecast run``: ``ets`` and
  ``pooled_median``) and ``--models auto --methods all``; the job's own holdout MASE of the
  chosen pipeline, goal < 1.0; run time of the whole job.
* **tourism_small** (TourismSmall, 89 series ``purpose / state / city``, bundled): train to
  2004 Q4, h = 8 (the last 8 quarters held out, as Nixtla's hierarchicalforecast-vs-fable
  comparison). "RMSSE" as that comparison defines it: per series, the test RMSE divided by the
  test RMSE of the naive last-value forecast, averaged over the 89 series. Goal <= 0.755
  (fable's best, ETS + reconciliation, as the issue quotes it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from htsforecast import job, metrics
from htsforecast.datasets import load_prison, load_tourism, load_tourism_small
from htsforecast.hierarchy import Hierarchy
from htsforecast.job import RunConfig, run
from htsforecast.models import LocalExecutor, Panel, SeasonalNaive

H = 8
GOALS = {
    "tourism": {"rmse": (41.0, 43.19), "mase": (0.93, 0.98)},
    "prison": {"mase": (1.96, 1.96), "crps_skill": (11.3, 11.3)},
    "tourism_small": {"rmsse_naive": (0.755, 0.755)},
}


def coverage(y: np.ndarray, bounds: dict) -> dict[str, float]:
    """Coverage (%) of the 80 % and 95 % intervals over all cells, at the first and last step."""
    out = {}
    for lv in (80, 95):
        lo, hi = bounds[lv]
        inside = (y >= lo) & (y <= hi)
        out[f"cov{lv}"] = 100 * inside.mean()
        out[f"cov{lv}_h1"], out[f"cov{lv}_h8"] = 100 * inside[:, 0].mean(), 100 * inside[:, -1].mean()
    return out


def _run_job(bottom: pd.DataFrame, formula: str, freq: str, h: int, n_jobs: int, **kw):
    """``htsforecast run --models auto --methods all`` on ``bottom`` (written to a CSV)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.csv")
        bottom.to_csv(path, index=False)
        cfg = RunConfig(
            data=path, formula=formula, freq=freq, h=h, models=("auto",),
            methods=("all",), n_jobs=n_jobs, out=os.path.join(tmp, "out"), plots=False,
            **kw,
        )  # fmt: skip
        t0 = time.perf_counter()
        res = run(cfg, progress=False, echo=lambda s: None)
        return res, time.perf_counter() - t0


def _wide(frame: pd.DataFrame, col: str, ids: list[str]) -> pd.DataFrame:
    return frame.pivot(index="unique_id", columns="ds", values=col).loc[ids]


def _score(res, Y: pd.DataFrame, hier: Hierarchy, cutoff: pd.Timestamp, m: int) -> dict:
    """Test-period scores of the chosen pipeline: rmse, mase, coverage, CRPS (from every level's
    bounds as quantiles)."""
    fc = _chosen(res)
    ids = hier.node_ids
    train = _wide(Y[Y["ds"] <= cutoff], "y", ids).to_numpy()
    test = _wide(Y[Y["ds"] > cutoff], "y", ids)
    y = test.to_numpy()
    yhat = _wide(fc, "yhat", ids)[test.columns].to_numpy()
    out = {
        "rmse": np.mean(metrics.rmse(y, yhat)),
        "mase": np.nanmean(metrics.mase(y, yhat, train, m=m)),
    }
    levels = sorted(int(c.rsplit("_", 1)[1]) for c in fc.columns if c.startswith("yhat_lo_"))
    bounds = {
        lv: tuple(_wide(fc, f"yhat_{s}_{lv}", ids)[test.columns].to_numpy() for s in ("lo", "hi"))
        for lv in levels
    }
    out.update(coverage(y, bounds))
    out["crps"] = metrics.crps_quantiles(y, *metrics.interval_quantiles(bounds))
    return out


def _chosen(res) -> pd.DataFrame:
    """The chosen pipeline's forecasts (``res.selection`` is the job's selection record)."""
    sel = res.selection
    fc = res.forecasts
    return fc[(fc["model"] == sel["model"]) & (fc["method"] == sel["method"])]


def _regret(res, Y: pd.DataFrame, hier: Hierarchy, cutoff: pd.Timestamp, m: int) -> None:
    """After the fact (never used in a choice): test MASE of every method of the chosen model,
    to tell a selection miss from a base-forecast miss."""
    ids = hier.node_ids
    train = _wide(Y[Y["ds"] <= cutoff], "y", ids).to_numpy()
    test = _wide(Y[Y["ds"] > cutoff], "y", ids)
    fc = res.forecasts[res.forecasts["model"] == res.selection["model"]]
    out = {}
    for method, part in fc.groupby("method"):
        yhat = _wide(part, "yhat", ids)[test.columns].to_numpy()
        out[method] = np.nanmean(metrics.mase(test.to_numpy(), yhat, train, m=m))
    ranked = sorted(out.items(), key=lambda kv: kv[1])
    print("  after the fact, test MASE by method:", ", ".join(f"{k} {v:.3f}" for k, v in ranked))


def _snaive_crps(Y: pd.DataFrame, hier: Hierarchy, cutoff: pd.Timestamp, m: int) -> np.ndarray:
    train = Y[Y["ds"] <= cutoff].sort_values(["unique_id", "ds"])
    panel = Panel.from_long(train.reset_index(drop=True), "QS")
    out = SeasonalNaive(m).fit_predict(panel, H, (95,), LocalExecutor(1))
    order = pd.Index(panel.ids).get_indexer(hier.node_ids)
    sd = ((out.hi[95] - out.lo[95]) / (2 * norm.ppf(0.975)))[order]
    y = _wide(Y[Y["ds"] > cutoff], "y", hier.node_ids).to_numpy()
    return metrics.crps_gaussian(y, out.mean[order], sd)


def _report(name: str, res, secs: float, scores: dict, extra: str = "") -> None:
    sel = res.selection
    print(f"\n== {name}: chosen model={sel['model']!r} method={sel['method']!r} "
          f"(CV mase {sel['score']:.3f} over {sel.get('windows')} window(s); rule: {sel.get('rule')})"
          f"; job time {secs:.0f} s, load {os.getloadavg()[0]:.1f}{extra} ==")  # fmt: skip
    for key in ("runner_up", "excluded"):
        if key in sel:
            print(f"  {key}: {sel[key]}")
    for metric, (goal, book) in GOALS.get(name, {}).items():
        ours = scores[metric]
        better = metric == "crps_skill"
        met = ours >= goal if better else ours <= goal
        gap = 100 * (ours / goal - 1)
        print(f"  {metric:10s} ours {ours:8.3f}   published {book:7.4g}   goal "
              f"{'>=' if better else '<='} {goal:6.4g}   {'MET' if met else 'missed'} ({gap:+.1f} % vs goal)")  # fmt: skip


def tourism(n_jobs: int) -> None:
    ds = load_tourism()
    hier = Hierarchy.from_formula(ds.formula)
    Y = hier.aggregate(ds.data)
    cutoff = pd.Timestamp("2015-10-01")
    res, secs = _run_job(ds.data[ds.data["ds"] <= cutoff], ds.formula, "QS", H, n_jobs)
    sc = _score(res, Y, hier, cutoff, 4)
    _report("tourism", res, secs, sc)
    _regret(res, Y, hier, cutoff, 4)
    print(f"  coverage 80 %: {sc['cov80']:.1f} (h=1 {sc['cov80_h1']:.1f}, h=8 {sc['cov80_h8']:.1f});"
          f" 95 %: {sc['cov95']:.1f} (h=1 {sc['cov95_h1']:.1f}, h=8 {sc['cov95_h8']:.1f})"
          "   goal 75-85 / 90-97, drop <= 10")  # fmt: skip
    _calibration(res)
    _choices(res)


def prison(n_jobs: int) -> None:
    ds = load_prison()
    keys = ["gender", "legal", "state"]
    bottom = ds.data.groupby([*keys, "ds"], as_index=False)["y"].sum()
    bottom["y"] = bottom["y"] / 1000
    formula = "gender * legal * state"
    hier = Hierarchy.from_formula(formula)
    Y = hier.aggregate(bottom, freq="QS")
    cutoff = pd.Timestamp("2014-10-01")
    res, secs = _run_job(bottom[bottom["ds"] <= cutoff], formula, "QS", H, n_jobs)
    sc = _score(res, Y, hier, cutoff, 4)
    ref = _snaive_crps(Y, hier, cutoff, 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        skill = 100 * (1 - sc["crps"] / ref)
    sc["crps_skill"] = float(np.nanmean(skill[np.isfinite(skill)]))
    _report("prison", res, secs, sc)
    _regret(res, Y, hier, cutoff, 4)
    _calibration(res)
    _choices(res)


def tourism_small(n_jobs: int) -> None:
    ds = load_tourism_small()
    hier = Hierarchy.from_formula(ds.formula)
    Y = hier.aggregate(ds.data, freq=ds.freq)
    cutoff = pd.Timestamp("2004-10-01")
    res, secs = _run_job(ds.data[ds.data["ds"] <= cutoff], ds.formula, "QS", H, n_jobs)
    sc = _score(res, Y, hier, cutoff, 4)
    ids = hier.node_ids
    train = _wide(Y[Y["ds"] <= cutoff], "y", ids).to_numpy()
    test = _wide(Y[Y["ds"] > cutoff], "y", ids)
    naive = np.repeat(train[:, -1:], test.shape[1], axis=1)  # last value, every step
    fc = _chosen(res)
    yhat = _wide(fc, "yhat", ids)[test.columns].to_numpy()
    y = test.to_numpy()
    sc["rmsse_naive"] = float(np.mean(metrics.rmse(y, yhat) / metrics.rmse(y, naive)))
    _report("tourism_small", res, secs, sc)
    _regret(res, Y, hier, cutoff, 4)
    print(f"  (also: RMSE {sc['rmse']:.1f}, MASE {sc['mase']:.3f})")
    _choices(res)


def radon(n_jobs: int) -> None:
    """The plain default job (``htsforecast run``), then ``--models auto --methods all``."""
    for label, kw in (("radon (default job)", {}),
                      ("radon --models auto", {"models": ("auto",), "methods": ("all",)})):  # fmt: skip
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            cfg = RunConfig(n_jobs=n_jobs, out=tmp, plots=False, **kw)
            res = run(cfg, progress=False, echo=lambda s: None)
        secs = time.perf_counter() - t0
        score = res.selection["score"]
        _report(label, res, secs, {})
        print(f"  all-series MASE (job holdout) {score:.3f}   goal < 1.0   "
              f"{'MET' if score < 1 else 'missed'}")  # fmt: skip
    _choices(res)


_BUILT: dict = {}
_make_models = job.make_models


def _capture(*args, **kwargs):
    """Keep the models the job builds, to read the ``auto`` model's per-node choices."""
    out = _make_models(*args, **kwargs)
    _BUILT.update(out)
    return out


job.make_models = _capture


def _calibration(res) -> None:
    """The chosen pipeline's interval calibration (basis and factor per step) from the job."""
    cal, sel = res.selection.get("calibration"), res.selection
    if not cal:
        return
    f = pd.DataFrame(cal["factors"])
    f = f[(f["model"] == sel["model"]) & (f["method"] == sel["method"])]
    f = f[f["level"] == f["level"].min()]
    basis = f["basis"].iloc[0] if "basis" in f else "interval"
    print(f"  calibration ({basis} basis): width x " + " ".join(f"{c:.2f}" for c in f["factor"]))


def _choices(res) -> None:
    """How often each candidate was chosen (the ``auto`` model of the job's last fit)."""
    model = _BUILT.get("auto")
    if model is not None and getattr(model, "choices_", None) is not None:
        counts = model.choices_.groupby(["group", "model"]).size()
        print("  per-node choices:", ", ".join(f"{g}/{m} {c}" for (g, m), c in counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="tourism,prison,tourism_small,radon")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)")
    warnings.simplefilter("ignore")
    for name in args.only.split(","):
        runs = {"tourism": tourism, "prison": prison, "tourism_small": tourism_small,
                "radon": radon}  # fmt: skip
        runs[name](args.n_jobs)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
