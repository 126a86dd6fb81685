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
import os
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
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def raw_statsforecast(Y: pd.DataFrame, h: int, level: list[int], n_jobs: int):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    sf = StatsForecast(models=[AutoETS(season_length=12)], freq="MS", n_jobs=n_jobs)
    fc = sf.forecast(df=Y, h=h, level=level, fitted=True)
    return fc, sf.forecast_fitted_values()


def via_htsforecast(Y: pd.DataFrame, h: int, level: list[int], n_jobs: int, freq: str):
    from statsforecast.models import AutoETS

    from htsforecast._forecast import forecast
    from htsforecast.models import StatsForecastModel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        base = forecast(Y, {"AutoETS": StatsForecastModel(AutoETS(season_length=12))},
                        h=h, freq=freq, level=level, n_jobs=n_jobs, progress=False)  # fmt: skip
    return base, caught


def prophet_run(Y: pd.DataFrame, freq: str, n_jobs: int):
    from htsforecast._forecast import forecast
    from htsforecast.models import ProphetModel

    model = ProphetModel(weekly_seasonality=False, daily_seasonality=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return forecast(Y, {"prophet": model}, h=12, freq=freq, level=[80, 95], n_jobs=n_jobs,
                        progress=False)  # fmt: skip


def bench_ets(Y: pd.DataFrame, freq: str, n_jobs: int, repeats: int) -> tuple[list, list[str]]:
    """AutoETS via htsforecast vs raw statsforecast, alternating, best of ``repeats``."""
    h, level, n_ids = 12, [80, 95], Y["unique_id"].nunique()
    first = Y[Y["unique_id"] == Y["unique_id"].iat[0]]
    raw_statsforecast(first, h, level, n_jobs)  # warm-up, not timed: numba compilation
    via_htsforecast(first, h, level, n_jobs, freq)
    raw_t, ours_t = [], []
    for _ in range(repeats):  # alternate, so drift in machine load hits both alike
        *t, (fc, _fv) = timed(lambda: raw_statsforecast(Y, h, level, n_jobs))
        raw_t.append(t)
        *t, (base, caught) = timed(lambda: via_htsforecast(Y, h, level, n_jobs, freq))
        ours_t.append(t)
    raw, ours = min(raw_t), min(ours_t)  # (wall, cpu) pairs
    wide = base.wide().set_index(["unique_id", "ds"])
    ref = fc.set_index(["unique_id", "ds"]).loc[wide.index]
    fell = set(base.fallbacks["unique_id"])
    keep = ~wide.index.get_level_values(0).isin(fell)
    diff = np.nanmax(np.abs(wide.loc[keep, "AutoETS"] - ref.loc[keep, "AutoETS"]))
    rows = [
        ("AutoETS, raw statsforecast", n_jobs, n_ids, raw),
        ("AutoETS, htsforecast.forecast", n_jobs, n_ids, ours),
    ]
    notes = [
        f"htsforecast overhead over raw statsforecast: wall {100 * (ours[0] / raw[0] - 1):+.1f} %,"
        f" CPU {100 * (ours[1] / raw[1] - 1):+.1f} % (target < 10 %)",
        f"max |yhat difference| vs raw statsforecast (non-fallback nodes): {diff:.2e}",
        f"nodes that fell back: {len(fell)}; warnings: {[str(w.message)[:200] for w in caught]}",
    ]
    return rows, notes


def bench_prophet(Y: pd.DataFrame, freq: str, n_nodes: int) -> tuple[list, list[str]]:
    """Prophet on the first ``n_nodes`` nodes with n_jobs=1 and n_jobs=2."""
    sub_ids = Y["unique_id"].drop_duplicates().iloc[:n_nodes]
    Ysub = Y[Y["unique_id"].isin(sub_ids)]
    n_obs = len(Ysub) // len(sub_ids)
    for n_jobs in (1, 2):  # warm-up, not timed: import prophet here, start the 2 workers
        prophet_run(Ysub.iloc[: 2 * n_obs], freq, n_jobs)
    p1 = timed(lambda: prophet_run(Ysub, freq, 1))[:2]
    p2 = timed(lambda: prophet_run(Ysub, freq, 2))[:2]
    rows = [
        ("Prophet, htsforecast", 1, len(sub_ids), p1),
        ("Prophet, htsforecast", 2, len(sub_ids), p2),
    ]
    return rows, [
        f"Prophet speed-up n_jobs=2 vs 1: {p1[0] / p2[0]:.2f}x (target >= 1.7x on 2 cores)"
    ]


def _spin(seconds: float) -> float:
    """Burn ``seconds`` of CPU (control task for the parallel check)."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return seconds


def bench_control(n_tasks: int = 8, seconds: float = 0.25) -> tuple[list, list[str]]:
    """Same executor, pure-CPU tasks: the speed-up this machine allows right now."""
    from htsforecast.models import LocalExecutor

    LocalExecutor(n_jobs=2).map(_spin, [0.01, 0.01])  # start the workers
    items = [seconds] * n_tasks
    t1 = timed(lambda: LocalExecutor(n_jobs=1).map(_spin, items))[:2]
    t2 = timed(lambda: LocalExecutor(n_jobs=2).map(_spin, items))[:2]
    rows = [
        ("control: CPU spin tasks", 1, n_tasks, t1),
        ("control: CPU spin tasks", 2, n_tasks, t2),
    ]
    return rows, [f"control speed-up (pure CPU, same executor): {t1[0] / t2[0]:.2f}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=1, help="n_jobs for the AutoETS runs")
    parser.add_argument("--repeats", type=int, default=1, help="AutoETS repeats (best kept)")
    parser.add_argument("--prophet-nodes", type=int, default=120, help="0: skip Prophet")
    parser.add_argument("--ets-nodes", type=int, default=-1, help="first N nodes; -1 all, 0 skip")
    args = parser.parse_args()

    Y, freq, name = load_panel()
    n_ids = Y["unique_id"].nunique()
    print(
        f"panel: {name}, {n_ids} nodes x {len(Y) // n_ids} periods ({freq}); h=12, level=[80, 95]"
    )
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows, notes = [], []
    if args.ets_nodes:
        Yets = (
            Y
            if args.ets_nodes < 0
            else Y[Y["unique_id"].isin(Y["unique_id"].unique()[: args.ets_nodes])]
        )
        r, n = bench_ets(Yets, freq, args.n_jobs, args.repeats)
        rows, notes = rows + r, notes + n
    if args.prophet_nodes:
        r, n = bench_prophet(Y, freq, args.prophet_nodes)
        rc, nc = bench_control()
        rows, notes = rows + r + rc, notes + n + nc
    print(
        f"\n{'run':32s} {'n_jobs':>6s} {'series':>7s} {'wall s':>8s} {'series/s':>9s} {'cpu s*':>8s}"
    )
    for label, nj, n, (sec, cpu) in rows:
        print(f"{label:32s} {nj:6d} {n:7d} {sec:8.2f} {n / sec:9.1f} {cpu:8.2f}")
    print("* CPU seconds of this process only (statsforecast n_jobs=1 fits run here; Prophet's")
    print("  cmdstan fits and worker processes are not counted)\n")
    print("\n".join(notes))
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
