"""Base-model fitting speed: htsforecast vs raw statsforecast, and Prophet's parallel speed-up.

Prints, on the bundled radon panel (all nodes of ``(state / county) * floor``):

* AutoETS through ``htsforecast.forecast`` vs the same AutoETS through ``StatsForecast`` directly
  (same frame, same ``h``, ``level`` and ``fitted=True``), in the same run: seconds,
  series/second and htsforecast's overhead (target < 10 %);
* Prophet at every node of a subset (``--prophet-nodes``) with ``n_jobs=1`` vs ``n_jobs=2``
  (target speed-up >= 1.7x on two cores).

Usage: ``python benchmarks/base_models.py [--n-jobs 1] [--repeats 1] [--prophet-nodes 120]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def load_panel() -> tuple[pd.DataFrame, str, str]:
    """All nodes of the radon panel (or a synthetic 1,200 x 240 monthly panel if missing)."""
    try:
        from htsforecast.datasets import load_radon_panel
        from htsforecast.hierarchy import Hierarchy

        ds = load_radon_panel()
        return Hierarchy.from_formula(ds.formula).aggregate(ds.data, freq=ds.freq), ds.freq, "radon"
    except (ImportError, TypeError):
        rng = np.random.default_rng(0)
        t = np.arange(240)
        ds = pd.date_range("2000-01-01", periods=240, freq="MS")
        frames = [
            pd.DataFrame({"unique_id": f"s{i}", "ds": ds,
                          "y": 100 + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 3, 240).cumsum()})
            for i in range(1200)
        ]  # fmt: skip
        return pd.concat(frames, ignore_index=True), "MS", "synthetic"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def raw_statsforecast(Y: pd.DataFrame, h: int, level: list[int], n_jobs: int):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    sf = StatsForecast(models=[AutoETS(season_length=12)], freq="MS", n_jobs=n_jobs)
    fc = sf.forecast(df=Y, h=h, level=level, fitted=True)
    return fc, sf.forecast_fitted_values()


def via_htsforecast(Y: pd.DataFrame, h: int, level: list[int], n_jobs: int, freq: str):
    from statsforecast.models import AutoETS

    from htsforecast.forecast import forecast
    from htsforecast.models import StatsForecastModel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        base = forecast(Y, {"AutoETS": StatsForecastModel(AutoETS(season_length=12))},
                        h=h, freq=freq, level=level, n_jobs=n_jobs, progress=False)  # fmt: skip
    return base, caught


def prophet_run(Y: pd.DataFrame, freq: str, n_jobs: int):
    from htsforecast.forecast import forecast
    from htsforecast.models import ProphetModel

    model = ProphetModel(weekly_seasonality=False, daily_seasonality=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return forecast(Y, {"prophet": model}, h=12, freq=freq, level=[80, 95], n_jobs=n_jobs,
                        progress=False)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=1, help="n_jobs for the AutoETS runs")
    parser.add_argument("--repeats", type=int, default=1, help="AutoETS repeats (best kept)")
    parser.add_argument("--prophet-nodes", type=int, default=120)
    args = parser.parse_args()

    Y, freq, name = load_panel()
    n_ids = Y["unique_id"].nunique()
    n_obs = len(Y) // n_ids
    h, level = 12, [80, 95]
    print(f"panel: {name}, {n_ids} nodes x {n_obs} periods ({freq}); h={h}, level={level}")

    raw_t, ours_t = [], []
    for _ in range(args.repeats):  # alternate, so drift in machine load hits both alike
        t, (fc, fv) = timed(lambda: raw_statsforecast(Y, h, level, args.n_jobs))
        raw_t.append(t)
        t, (base, caught) = timed(lambda: via_htsforecast(Y, h, level, args.n_jobs, freq))
        ours_t.append(t)
    raw, ours = min(raw_t), min(ours_t)

    wide = base.wide().set_index(["unique_id", "ds"])
    ref = fc.set_index(["unique_id", "ds"]).loc[wide.index]
    fell = set(base.fallbacks["unique_id"])
    keep = ~wide.index.get_level_values(0).isin(fell)
    diff = np.nanmax(np.abs(wide.loc[keep, "AutoETS"] - ref.loc[keep, "AutoETS"]))

    rows = [
        ("AutoETS, raw statsforecast", args.n_jobs, n_ids, raw),
        ("AutoETS, htsforecast.forecast", args.n_jobs, n_ids, ours),
    ]
    sub_ids = Y["unique_id"].drop_duplicates().iloc[: args.prophet_nodes]
    Ysub = Y[Y["unique_id"].isin(sub_ids)]
    prophet_run(Ysub.iloc[: 2 * n_obs], freq, 2)  # start the worker pool once (not timed)
    p1, _ = timed(lambda: prophet_run(Ysub, freq, 1))
    p2, _ = timed(lambda: prophet_run(Ysub, freq, 2))
    rows += [
        ("Prophet, htsforecast", 1, len(sub_ids), p1),
        ("Prophet, htsforecast", 2, len(sub_ids), p2),
    ]

    print(f"\n{'run':34s} {'n_jobs':>6s} {'series':>7s} {'seconds':>9s} {'series/s':>9s}")
    for label, nj, n, sec in rows:
        print(f"{label:34s} {nj:6d} {n:7d} {sec:9.2f} {n / sec:9.1f}")
    print(
        f"\nhtsforecast overhead over raw statsforecast: {100 * (ours / raw - 1):+.1f} % (target < 10 %)"
    )
    print(f"max |yhat difference| vs raw statsforecast (non-fallback nodes): {diff:.2e}")
    print(f"nodes that fell back: {len(fell)}; warnings: {[str(w.message)[:200] for w in caught]}")
    print(f"Prophet speed-up n_jobs=2 vs 1: {p1 / p2:.2f}x (target >= 1.7x on 2 cores)")


if __name__ == "__main__":
    main()
