"""Local vs cluster wall time for base-model fitting: AutoETS and Prophet on the radon panel.

In one run, on the bundled radon panel (``(state / county) * floor``, 1,367 nodes x 240 months),
``htsforecast.forecast`` with h=12, level=[80, 95]:

* AutoETS(season_length=12) at every node (``--ets-nodes``, default all): local ``n_jobs=1``,
  local ``n_jobs=2`` (statsforecast's own processes) and a Dask ``LocalCluster`` of 2 worker
  processes x 1 thread (``engine=client``);
* Prophet at the first ``--prophet-nodes`` nodes (default 300: total, the 9 states, the 2 floors
  and the first 288 state/county nodes, AZ..MO) with the same three set-ups;
* with ``--spark``, the same on Spark ``local[2]`` (needs pyspark and Java 17).

Each set-up is warmed up first on a few nodes (worker imports, numba cache, cmdstan), not timed;
cluster start-up is timed separately. Every distributed result is checked against the local one
(max |difference| over forecasts, intervals and fitted values; 0 means identical).

Usage: ``python benchmarks/distributed.py [--ets-nodes -1] [--prophet-nodes 300] [--spark]``.
On a 2-core machine the gain is bounded by the 2 cores; the point is the overhead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

# This file is named like the ``distributed`` package: drop its folder from the import path so
# ``import distributed`` finds Dask's package, here and in the spawned worker processes.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def load_panel() -> pd.DataFrame:
    from htsforecast import Hierarchy
    from htsforecast.datasets import load_radon_panel

    ds = load_radon_panel()
    return Hierarchy.from_formula(ds.formula).aggregate(ds.data, freq=ds.freq)


def first_nodes(Y: pd.DataFrame, n: int) -> pd.DataFrame:
    if n < 0:
        return Y
    return Y[Y["unique_id"].isin(Y["unique_id"].unique()[:n])]


def ets() -> dict:
    from statsforecast.models import AutoETS

    from htsforecast.models import StatsForecastModel

    return {"AutoETS": StatsForecastModel(AutoETS(season_length=12))}


def prophet() -> dict:
    from htsforecast.models import ProphetModel

    return {"Prophet": ProphetModel(seed=0)}


def run(Y: pd.DataFrame, models: dict, **kwargs):
    from htsforecast._forecast import forecast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return forecast(Y, models, h=12, freq="MS", level=[80, 95], progress=False, **kwargs)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def max_diff(a, b) -> float:
    """Largest absolute difference over forecasts, intervals and fitted values."""
    num = a.forecasts.select_dtypes("number").columns
    d1 = np.nanmax(np.abs(a.forecasts[num].to_numpy() - b.forecasts[num].to_numpy()))
    d2 = np.nanmax(np.abs(a.insample["fitted"].to_numpy() - b.insample["fitted"].to_numpy()))
    return float(max(d1, d2))


def bench(name: str, Y: pd.DataFrame, models: dict, engines: dict) -> list[tuple]:
    """Time ``models`` on ``Y`` under each set-up (warmed up first); rows for the table."""
    warm = first_nodes(Y, 4)
    rows, ref = [], None
    for label, kwargs in engines.items():
        run(warm, models, **kwargs)
        load = os.getloadavg()[0]
        sec, base = timed(lambda kwargs=kwargs: run(Y, models, **kwargs))
        load = (load, os.getloadavg()[0])
        ref = base if ref is None else ref
        diff = max_diff(ref, base)
        rows.append((name, label, len(base.ids), sec, diff, load))
        print(f"  {name:8s} {label:20s} {sec:8.1f} s  (load {load[0]:.1f} -> {load[1]:.1f})",
              flush=True)  # fmt: skip
    return rows


def start_dask():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return cluster, Client(cluster)


def start_spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ets-nodes", type=int, default=-1, help="first N nodes; -1 all, 0 skip")
    parser.add_argument("--prophet-nodes", type=int, default=300, help="first N nodes; 0 skip")
    parser.add_argument("--spark", action="store_true", help="also Spark local[2]")
    args = parser.parse_args()

    Y = load_panel()
    n_ids = Y["unique_id"].nunique()
    print(f"radon panel: {n_ids} nodes x {len(Y) // n_ids} months; h=12, level=[80, 95]")
    print(f"cores: {os.cpu_count()}; load average at start: {os.getloadavg()}")
    start, (cluster, client) = timed(start_dask)
    print(f"Dask LocalCluster (2 processes x 1 thread) start-up: {start:.1f} s")
    engines = {
        "local n_jobs=1": {"n_jobs": 1},
        "local n_jobs=2": {"n_jobs": 2},
        "Dask 2 workers": {"engine": client},
    }
    if args.spark:
        start, spark = timed(start_spark)
        print(f"Spark local[2] start-up: {start:.1f} s")
        engines["Spark local[2]"] = {"engine": spark}
    rows = []
    try:
        if args.ets_nodes:
            rows += bench("AutoETS", first_nodes(Y, args.ets_nodes), ets(), engines)
        if args.prophet_nodes:
            rows += bench("Prophet", first_nodes(Y, args.prophet_nodes), prophet(), engines)
    finally:
        client.close()
        cluster.close()
        if args.spark:
            spark.stop()
    print(f"\n{'model':8s} {'set-up':18s} {'nodes':>6s} {'wall s':>8s} {'nodes/s':>8s} "
          f"{'vs n_jobs=1':>11s} {'max|diff|':>10s} {'load':>10s}")  # fmt: skip
    serial = {r[0]: r[3] for r in rows if r[1] == "local n_jobs=1"}
    for model, label, n, sec, diff, load in rows:
        print(f"{model:8s} {label:18s} {n:6d} {sec:8.1f} {n / sec:8.1f} "
              f"{serial[model] / sec:10.2f}x {diff:10.1e} {load[0]:4.1f}->{load[1]:4.1f}")  # fmt: skip
    print(f"load average at end: {os.getloadavg()}")
    print("max|diff|: largest absolute difference to the local n_jobs=1 run over forecasts,")
    print("intervals and fitted values (0 = identical). load: 1-min load average before -> after.")


if __name__ == "__main__":
    main()
