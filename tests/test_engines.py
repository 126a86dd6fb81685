"""Base forecasts on a cluster (Dask LocalCluster, Spark local[2]) equal the local run exactly.

The reference is always the same ``forecast`` call without ``engine`` (itself tested against raw
statsforecast and hand computations in test_forecast / test_models): forecasts, intervals,
in-sample fitted values, residuals, fallbacks and Prophet's sample paths must be identical.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from htsforecast._forecast import FallbackWarning, forecast
from htsforecast.errors import HTSError
from htsforecast.models import Naive, ProphetModel, SeasonalNaive, StatsForecastModel

distributed = pytest.importorskip("distributed")

H, LEVEL = 6, [80, 95]


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    """The radon panel's first 40 nodes (total, states, floors, AZ/IN counties), last 60 months."""
    from htsforecast import Hierarchy
    from htsforecast.datasets import load_radon_panel

    ds = load_radon_panel()
    Y = Hierarchy.from_formula(ds.formula).aggregate(ds.data, freq=ds.freq)
    keep = Y["unique_id"].unique()[:40]
    Y = Y[Y["unique_id"].isin(keep)]
    return Y.groupby("unique_id", sort=False).tail(60).reset_index(drop=True)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def ets_models() -> dict:
    from statsforecast.models import AutoETS

    return {"ets": StatsForecastModel(AutoETS(season_length=12)), "snaive": SeasonalNaive(12)}


def prophet_models() -> dict:
    return {"prophet": ProphetModel(n_samples=40, seed=3, weekly_seasonality=False)}


@pytest.fixture(scope="module")
def local_ets(panel):
    return forecast(panel, ets_models(), h=H, freq="MS", level=LEVEL, progress=False)


@pytest.fixture(scope="module")
def prophet_panel(panel):
    return panel[panel["unique_id"].isin(panel["unique_id"].unique()[[0, 5, 13]])]


@pytest.fixture(scope="module")
def local_prophet(prophet_panel):
    return forecast(prophet_panel, prophet_models(), h=H, freq="MS", level=[80], progress=False)


def assert_same(local, remote) -> None:
    """Every frame and array of two BaseForecasts is identical (no tolerance)."""
    pd.testing.assert_frame_equal(remote.forecasts, local.forecasts, check_exact=True)
    pd.testing.assert_frame_equal(remote.insample, local.insample, check_exact=True)
    pd.testing.assert_frame_equal(remote.fallbacks, local.fallbacks, check_exact=True)
    assert remote.samples.keys() == local.samples.keys()
    for name in local.samples:
        np.testing.assert_array_equal(remote.samples[name], local.samples[name])
    assert (remote.ids, remote.models, remote.level) == (local.ids, local.models, local.level)


# ----------------------------------------------------------------------------- Dask


def test_dask_statsforecast_same_as_local_and_runs_on_workers(panel, client, local_ets):
    with distributed.get_task_stream(client) as stream:
        remote = forecast(panel, ets_models(), h=H, freq="MS", level=LEVEL, engine=client)
    assert_same(local_ets, remote)
    ins = remote.insample[remote.insample["model"] == "ets"]
    assert ins["fitted"].notna().all()  # AutoETS has a fitted value at every observation
    np.testing.assert_allclose(ins["resid"], ins["y"] - ins["fitted"], rtol=0, atol=0)
    # the fits ran as tasks on both worker processes, not in this process
    assert len({task["worker"] for task in stream.data}) == 2


def test_dask_fallback_nodes_same_as_local(panel, client):
    """Failures inside statsforecast on a worker come back as the same fallbacks and reasons."""
    from statsforecast.models import AutoETS

    Y = panel[panel["unique_id"].isin(panel["unique_id"].unique()[10:18])]
    Y = pd.concat([Y, panel[panel["unique_id"] == "total"].tail(5)])  # 5 obs: too short
    models = {"mnn": StatsForecastModel(AutoETS(model="MNN"))}  # fails on series with zeros
    runs = []
    for engine in (None, client):
        with pytest.warns(FallbackWarning):
            runs.append(forecast(Y, models, h=H, freq="MS", level=[80], engine=engine))
    local, remote = runs
    assert_same(local, remote)
    reasons = set(local.fallbacks["reason"])
    assert any(r.startswith("too short") for r in reasons) and len(reasons) >= 2


def test_dask_prophet_same_as_local(prophet_panel, client, local_prophet):
    """Prophet through client.map over chunks (engine="dask": the current client)."""
    with distributed.get_task_stream(client) as stream:
        remote = forecast(
            prophet_panel, prophet_models(), h=H, freq="MS", level=[80], engine="dask"
        )
    assert_same(local_prophet, remote)
    assert remote.samples["prophet"].shape == (3, H, 40)
    assert len(stream.data) == 3  # one task per node chunk


def test_dask_executor_map_keeps_order_and_partition_covers(client):
    from htsforecast.engines import DaskExecutor

    ex = DaskExecutor(client, chunks_per_worker=3)
    assert ex.n_jobs == 2
    chunks = ex.partition(17)
    assert len(chunks) == 6
    np.testing.assert_array_equal(np.concatenate(chunks), np.arange(17))
    assert ex.map(np.square, [np.arange(k) for k in range(5)])[4].tolist() == [0, 1, 4, 9]
    assert ex.map(len, []) == []


def test_engine_errors(monkeypatch):
    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "default_client", no_client)
    Y = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2020-01", periods=3, freq="MS"),
                      "y": [1.0, 2.0, 3.0]})  # fmt: skip
    models = {"naive": Naive()}
    with pytest.raises(HTSError, match="no running Dask client.*engine=client"):
        forecast(Y, models, h=1, freq="MS", engine="dask")
    with pytest.raises(ValueError, match="'dask' or 'spark'.*'ray'"):
        forecast(Y, models, h=1, freq="MS", engine="ray")
    with pytest.raises(TypeError, match="engine must be None.*got object"):
        forecast(Y, models, h=1, freq="MS", engine=object())


# ----------------------------------------------------------------------------- Spark


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        pytest.skip("Spark needs a Java runtime (none on PATH or JAVA_HOME)")
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this venv
        mp.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        session = (
            SparkSession.builder.master("local[2]")
            .appName("htsforecast-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        try:
            yield session
        finally:
            session.stop()


def test_spark_statsforecast_and_prophet_same_as_local(
    panel, local_ets, prophet_panel, local_prophet, spark
):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        remote = forecast(panel, ets_models(), h=H, freq="MS", level=LEVEL, engine=spark)
        assert_same(local_ets, remote)
        remote = forecast(
            prophet_panel, prophet_models(), h=H, freq="MS", level=[80], engine="spark"
        )
        assert_same(local_prophet, remote)


# ----------------------------------------------------------------------------- regressors


@pytest.fixture(scope="module")
def exog_panel():
    """Tiny simulated panel with promotions and holidays: (Y, X_future), 7 nodes."""
    from htsforecast import Hierarchy
    from htsforecast.calendar import CountryHolidays
    from htsforecast.datasets import simulate_promotions

    sim = simulate_promotions(n_states=2, stores_per_state=2, n_weeks=60, seed=1)
    cut = np.sort(sim.data["ds"].unique())[-H]
    exog = {"promo": "sum", "holiday": CountryHolidays("US", subdivision_col="state")}
    hier = Hierarchy.from_formula(sim.formula)
    Y = hier.aggregate(sim.data[sim.data["ds"] < cut], freq=sim.freq, exog=exog)
    future = sim.data[sim.data["ds"] >= cut].drop(columns="y")
    return Y, hier.aggregate(future, freq=sim.freq, exog=exog, target_col=None)


def exog_models() -> dict:
    from statsforecast.models import ARIMA

    return {"arima": StatsForecastModel(ARIMA(order=(1, 0, 0))),
            "prophet": ProphetModel(n_samples=20, weekly_seasonality=False)}  # fmt: skip


def test_dask_carries_regressors(exog_panel, client):
    Y, X = exog_panel
    local = forecast(Y, exog_models(), h=H, freq="W-SUN", level=[80], X_future=X)
    remote = forecast(Y, exog_models(), h=H, freq="W-SUN", level=[80], X_future=X,
                      engine=client)  # fmt: skip
    assert_same(local, remote)
    plain = forecast(Y[["unique_id", "ds", "y"]], exog_models(), h=H, freq="W-SUN", level=[80])
    assert not np.allclose(plain.forecasts["yhat"], local.forecasts["yhat"])  # X was used


def test_spark_carries_regressors(exog_panel, spark):
    Y, X = exog_panel
    arima = {"arima": exog_models()["arima"]}
    local = forecast(Y, arima, h=H, freq="W-SUN", level=[80], X_future=X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        remote = forecast(Y, arima, h=H, freq="W-SUN", level=[80], X_future=X, engine=spark)
    assert_same(local, remote)
