"""Fit base models on an existing cluster: Dask (``distributed``) or Spark.

``forecast(..., engine=...)`` sends the per-node work of the base models to a cluster the user
already runs; everything else (validation, fallbacks, the result frames, reconciliation) stays on
the driver, so the result is the same :class:`~htsforecast.BaseForecasts` as the local
run, with the same numbers.

What runs where
---------------
* statsforecast models (:class:`~htsforecast.models.StatsForecastModel`): the nodes are split into
  chunks and each chunk goes through ``StatsForecast(...).forecast(df, h, level, fitted=True)`` on
  a worker, through fugue (the layer statsforecast itself uses for Dask, Spark and Ray). We do not
  call ``StatsForecast.forecast(df=<Dask/Spark frame>)`` directly: in statsforecast 2.1.1 that path
  declares its forecast, interval *and* fitted-value columns ``float32`` (relative error ~1e-7), so
  it could not reproduce the local numbers. Our fugue transform returns float64 forecasts,
  intervals and in-sample fitted values (needed by ``wls_var`` / ``mint_*`` reconciliation).
* Per-series models (:class:`~htsforecast.models.ProphetModel`, any
  :class:`~htsforecast.models.SeriesForecaster`): chunks of nodes are sent with ``client.map``
  (Dask) or a ``groupBy(chunk).applyInPandas`` (Spark). Prophet seeds each node with
  ``seed + crc32(node id)``, so the chunking does not change its numbers.
* Built-in baselines (``Naive``, ``SeasonalNaive``, ``Mean``) and fallback refits are vectorised
  and run on the driver.

The panel ``Y`` (all nodes' histories) must fit in the driver's memory: it is the aggregated
panel, and reconciliation needs it there anyway; the cluster does the expensive fits.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from htsforecast._progress import progress_bar, progress_enabled
from htsforecast.errors import HTSError
from htsforecast.models._execution import Executor

__all__ = ["DaskExecutor", "SparkExecutor", "executor_for", "open_engine"]

T = TypeVar("T")
R = TypeVar("R")

_CHUNK = "_htsforecast_chunk"
_KIND = "_htsforecast_kind"  # 0: forecast row, 1: in-sample (fitted) row


def executor_for(engine: Any, progress: bool | None = None) -> Executor:
    """The executor that runs per-node work on ``engine``.

    Parameters
    ----------
    engine : "dask", "spark", distributed.Client, pyspark SparkSession or Executor
        ``"dask"``: the current Dask client (``distributed.default_client()``); ``"spark"``: the
        active Spark session. An object satisfying the :class:`~htsforecast.models.Executor`
        protocol (e.g. ``DaskExecutor(client, chunks_per_worker=8)``) is returned unchanged.
    progress : bool, optional
        Progress bar (Dask only); default on when stderr is a terminal.

    Raises
    ------
    HTSError
        ``"dask"`` / ``"spark"`` without a running client / session.
    TypeError
        Any other object.
    """
    if isinstance(engine, Executor):
        return engine
    show = progress_enabled(progress)
    if isinstance(engine, str):
        return _named_engine(engine.lower(), show)
    module = type(engine).__module__
    if module.startswith("distributed") and hasattr(engine, "submit"):
        return DaskExecutor(engine, progress=show)
    if module.startswith("pyspark") and hasattr(engine, "createDataFrame"):
        return SparkExecutor(engine, progress=show)
    raise TypeError(
        f"engine must be None, 'dask', 'spark', a distributed.Client, a pyspark SparkSession or "
        f"an Executor, got {type(engine).__name__}."
    )


def _named_engine(name: str, show: bool) -> Executor:
    if name == "dask":
        try:
            from distributed import default_client
        except ImportError as exc:
            raise ImportError(
                'engine="dask" needs dask.distributed: pip install "htsforecast[dask]".'
            ) from exc
        try:
            return DaskExecutor(default_client(), progress=show)
        except ValueError:
            raise HTSError(
                'engine="dask" found no running Dask client. Start one first, e.g. '
                "client = distributed.Client(n_workers=4), or pass engine=client."
            ) from None
    if name == "spark":
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise ImportError(
                'engine="spark" needs pyspark: pip install "htsforecast[spark]".'
            ) from exc
        session = SparkSession.getActiveSession()
        if session is None:
            raise HTSError(
                'engine="spark" found no active Spark session. Create one first, e.g. '
                'SparkSession.builder.master("local[2]").getOrCreate(), or pass engine=spark.'
            )
        return SparkExecutor(session, progress=show)
    raise ValueError(f"engine must be 'dask' or 'spark' when given as a string, got {name!r}.")


@contextlib.contextmanager
def open_engine(spec: str | None, n_jobs: int = -1) -> Iterator[Any]:
    """The engine a command-line user names, opened for the run and closed after it.

    Parameters
    ----------
    spec : None, "dask", "dask://host:port", "tcp://host:port" or "spark"
        ``None``: this machine (yields None). ``"dask"``: a local Dask cluster of ``n_jobs``
        single-threaded worker processes (``-1``: one per core). ``"dask://host:port"``: the
        existing scheduler at that address. ``"spark"``: the active Spark session, or a local one
        with ``n_jobs`` cores.
    """
    if spec is None:
        yield None
        return
    if spec == "spark":
        from pyspark.sql import SparkSession

        session = SparkSession.getActiveSession()
        if session is not None:
            yield session
            return
        cores = "*" if n_jobs < 1 else str(n_jobs)
        session = SparkSession.builder.master(f"local[{cores}]").getOrCreate()
        try:
            yield session
        finally:
            session.stop()
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise HTSError(
            '--engine dask needs dask.distributed: pip install "htsforecast[dask]".'
        ) from exc
    if spec == "dask":
        workers = (os.cpu_count() or 1) if n_jobs < 1 else n_jobs
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    address = "tcp://" + spec.split("://", 1)[1]
    try:
        client = Client(address, timeout=10)
    except OSError as exc:
        raise HTSError(
            f"--engine {spec}: cannot reach the Dask scheduler at {address}: {exc}"
        ) from None
    try:
        yield client
    finally:
        client.close()


def _chunks(n: int, n_jobs: int, per_job: int) -> list[np.ndarray]:
    """Contiguous chunks of ``0..n-1``: ``n_jobs * per_job`` of them (at most ``n``)."""
    if n == 0:
        return []
    k = min(n, max(1, n_jobs) * max(1, per_job))
    return [c for c in np.array_split(np.arange(n), k) if len(c)]


class _ClusterExecutor:
    """What the Dask and Spark executors share: chunking and the fugue statsforecast path."""

    chunks_per_worker: int

    @property
    def n_jobs(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def _engine(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _distribute(self, data: pd.DataFrame) -> tuple[Any, Any]:  # pragma: no cover
        raise NotImplementedError

    def partition(self, n: int) -> list[np.ndarray]:
        """Contiguous chunks, ``chunks_per_worker`` per worker thread (core)."""
        return _chunks(n, self.n_jobs, self.chunks_per_worker)

    def run_statsforecast(
        self,
        sf: Any,
        df: pd.DataFrame,
        h: int,
        level: list[int] | None,
        X_df: pd.DataFrame | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``sf.forecast(df, h, level, fitted=True)`` chunk-wise on the cluster (through fugue)."""
        return _fugue_statsforecast(self, sf, df, h, level, X_df)


@dataclass(frozen=True, eq=False)
class DaskExecutor(_ClusterExecutor):
    """Run per-node work on a Dask cluster (``distributed.Client``).

    Parameters
    ----------
    client : distributed.Client
        A connected client; its workers need htsforecast (and the models' libraries) installed.
    progress : bool
        tqdm bar counting fitted series as chunks complete (per-series models).
    chunks_per_worker : int
        Work items per worker thread: more gives better load balancing, fewer less overhead.
    """

    client: Any
    progress: bool = False
    chunks_per_worker: int = 4

    @property
    def n_jobs(self) -> int:
        """Worker threads in the cluster (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        sizes: Sequence[int] | None = None,
        desc: str = "",
    ) -> list[R]:
        """``[fn(item) for item in items]``, one Dask task per item (``client.map``)."""
        from distributed import as_completed

        items = list(items)
        if not items:
            return []
        sizes = list(sizes) if sizes is not None else [1] * len(items)
        inputs = self.client.scatter(items, hash=False)  # data to workers, not in the graph
        futures = self.client.map(fn, inputs, pure=False)
        where = {f.key: k for k, f in enumerate(futures)}
        bar = progress_bar(sum(sizes), desc, self.progress)
        try:
            for done in as_completed(futures):
                bar.update(sizes[where[done.key]])
            return self.client.gather(futures)
        finally:
            bar.close()

    @property
    def _engine(self) -> Any:
        return self.client

    def _distribute(self, data: pd.DataFrame) -> tuple[Any, None]:
        """A Dask frame with one partition per chunk (scattered to the workers), no shuffle."""
        import dask.dataframe as dd

        parts = [part for _, part in data.groupby(_CHUNK, sort=True)]
        futures = self.client.scatter(parts, hash=False)
        return dd.from_delayed(futures, meta=data.iloc[:0], verify_meta=False), None


@dataclass(frozen=True, eq=False)
class SparkExecutor(_ClusterExecutor):
    """Run per-node work on Spark (``pyspark.sql.SparkSession``), e.g. ``local[2]``.

    Parameters
    ----------
    spark : SparkSession
        Its executors need htsforecast and the models' libraries in the Python that
        ``PYSPARK_PYTHON`` names.
    progress : bool
        Unused (Spark shows its own stage progress).
    chunks_per_worker : int
        Work items per core of ``spark.sparkContext.defaultParallelism``.
    """

    spark: Any
    progress: bool = False
    chunks_per_worker: int = 4

    @property
    def n_jobs(self) -> int:
        """Spark's default parallelism (cores), at least 1."""
        try:
            return max(1, int(self.spark.sparkContext.defaultParallelism))
        except Exception:
            return max(1, os.cpu_count() or 1)

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        sizes: Sequence[int] | None = None,
        desc: str = "",
    ) -> list[R]:
        """``[fn(item) for item in items]``: pickled items, ``groupBy(item).applyInPandas``."""
        import cloudpickle

        items = list(items)
        if not items:
            return []
        blobs = pd.DataFrame(
            {"k": np.arange(len(items), dtype=np.int64),
             "blob": [cloudpickle.dumps(item) for item in items]}
        )  # fmt: skip
        sdf = self.spark.createDataFrame(blobs).repartition(len(items), "k")
        out = (
            sdf.groupBy("k")
            .applyInPandas(_spark_apply(cloudpickle.dumps(fn)), schema="k long, blob binary")
            .toPandas()
        )
        results = dict(zip(out["k"].tolist(), out["blob"].tolist()))
        return [cloudpickle.loads(results[k]) for k in range(len(items))]

    @property
    def _engine(self) -> Any:
        return self.spark

    def _distribute(self, data: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
        """The pandas frame, partitioned by chunk (a Spark ``groupBy(chunk).applyInPandas``)."""
        return data, {"by": _CHUNK}


def _spark_apply(fn_blob: bytes) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``applyInPandas`` function: unpickle each work item, run ``fn``, pickle the result.

    A plain one-argument function (pyspark reads its signature to tell ``(pdf)`` from
    ``(key, pdf)``).
    """

    def apply(pdf: pd.DataFrame) -> pd.DataFrame:
        import cloudpickle

        fn = cloudpickle.loads(fn_blob)
        blobs = [cloudpickle.dumps(fn(cloudpickle.loads(bytes(b)))) for b in pdf["blob"]]
        return pd.DataFrame({"k": pdf["k"].to_numpy(), "blob": blobs})

    return apply


# ----------------------------------------------------------------------------- statsforecast


def _output_columns(sf: Any, level: list[int] | None) -> list[str]:
    """statsforecast's forecast columns: per model ``alias``, ``alias-lo-L``, ``alias-hi-L``."""
    cols = []
    for model in sf.models:
        alias = repr(model)
        cols += [alias, *(f"{alias}-lo-{lv}" for lv in level or [])]
        cols += [f"{alias}-hi-{lv}" for lv in level or []]
    return cols


def _fugue_statsforecast(
    executor: _ClusterExecutor,
    sf: Any,
    df: pd.DataFrame,
    h: int,
    level: list[int] | None,
    X_df: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``sf`` on chunks of series of ``df`` on the executor's engine.

    Each chunk (``executor.partition`` of the series) is forecast by a fresh ``StatsForecast``
    with ``n_jobs=1`` on a worker, through ``fugue.api.transform``. Forecast and fitted rows come
    back in one float64 frame (``_KIND`` tells them apart), split and renamed here into the
    frames statsforecast returns (series in input order, dates sorted). Future regressor rows
    (``X_df``) travel in the same input frame, marked ``_KIND = 2``, so each chunk gets its own.
    """
    import fugue.api as fa

    exog = [c for c in df.columns if c not in ("unique_id", "ds", "y")] if X_df is not None else []
    codes, uniques = pd.factorize(df["unique_id"])
    chunk_of = np.empty(len(uniques), dtype=np.int64)
    chunks = executor.partition(len(uniques))
    for k, members in enumerate(chunks):
        chunk_of[members] = k
    data = pd.DataFrame(
        {"unique_id": df["unique_id"].astype(str).to_numpy(),
         "ds": df["ds"].to_numpy(dtype="datetime64[ns]"),
         "y": df["y"].to_numpy(dtype=np.float64), _CHUNK: chunk_of[codes], _KIND: 0,
         **{c: df[c].to_numpy(dtype=np.float64) for c in exog}}
    )  # fmt: skip
    if X_df is not None:
        fut = X_df.assign(
            y=np.nan, **{_KIND: 2, _CHUNK: chunk_of[uniques.get_indexer(X_df["unique_id"])]}
        )
        data = pd.concat([data, fut[data.columns]], ignore_index=True)
    cols = _output_columns(sf, level)
    schema = f"unique_id:str,ds:datetime,{_KIND}:int,y:double," + ",".join(
        f"v{j}:double" for j in range(len(cols))
    )
    params = {"models": sf.models, "freq": sf.freq, "fallback": sf.fallback_model, "h": h,
              "level": level, "cols": cols, "exog": exog}  # fmt: skip
    native, partition = executor._distribute(data)
    out = fa.transform(
        native,
        _chunk_forecast,
        schema=schema,
        params=params,
        partition=partition,
        engine=executor._engine,
        as_local=True,
    )
    return _split_output(fa.as_pandas(out), uniques, cols)


def _chunk_forecast(
    pdf: pd.DataFrame,
    models: list,
    freq: Any,
    fallback: Any,
    h: int,
    level: list[int] | None,
    cols: list[str],
    exog: list[str] | None = None,
) -> pd.DataFrame:
    """fugue transformer: one ``StatsForecast(...).forecast(fitted=True)`` on a chunk of series.

    Returns forecast rows (``_KIND`` 0) and in-sample rows (``_KIND`` 1) in one frame whose
    value columns ``v0, v1 ...`` follow ``cols`` (float64; fitted rows carry no intervals).
    Input rows with ``_KIND`` 2 are the future values of the regressors ``exog``.
    """
    from statsforecast import StatsForecast

    exog = list(exog or [])
    frame = pd.DataFrame(
        {"unique_id": pdf["unique_id"].astype(str).to_numpy(),
         "ds": pd.to_datetime(pdf["ds"]).to_numpy(dtype="datetime64[ns]"),
         "y": _floats(pdf["y"]), **{c: _floats(pdf[c]) for c in exog}}
    ).sort_values(["unique_id", "ds"], kind="stable")  # fmt: skip
    future = (pdf[_KIND].to_numpy() == 2)[frame.index.to_numpy()] if exog else None
    df = frame if future is None else frame[~future]
    X_df = None if future is None else frame[future].drop(columns="y")
    sf = StatsForecast(models=models, freq=freq, fallback_model=fallback, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fc = sf.forecast(df=df, h=h, level=level, X_df=X_df, fitted=True)
        fv = sf.forecast_fitted_values()
    parts = [_value_rows(frame, kind, cols) for kind, frame in enumerate((fc, fv))]
    return pd.concat(parts, ignore_index=True)


def _value_rows(frame: pd.DataFrame, kind: int, cols: list[str]) -> pd.DataFrame:
    frame = frame.reset_index() if "unique_id" not in frame.columns else frame
    n = len(frame)
    out = {
        "unique_id": frame["unique_id"].astype(str).to_numpy(),
        "ds": frame["ds"].to_numpy(dtype="datetime64[ns]"),
        _KIND: np.full(n, kind, dtype=np.int32),
        "y": _floats(frame["y"]) if "y" in frame else np.full(n, np.nan),
    }
    for j, col in enumerate(cols):
        interval = "-lo-" in col or "-hi-" in col
        keep = col in frame and not (kind == 1 and interval)
        out[f"v{j}"] = _floats(frame[col]) if keep else np.full(n, np.nan)
    return pd.DataFrame(out)


def _split_output(
    out: pd.DataFrame, uniques: pd.Index, cols: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild statsforecast's forecast and fitted frames, series in input order, dates sorted."""
    order = pd.Index(uniques.astype(str)).get_indexer(out["unique_id"].astype(str))
    frame = pd.DataFrame(
        {"unique_id": out["unique_id"].astype(str).to_numpy(dtype=object),
         "ds": pd.to_datetime(out["ds"]).to_numpy(dtype="datetime64[ns]"),
         "_pos": order, _KIND: out[_KIND].to_numpy(dtype=np.int64),
         "y": _floats(out["y"])}
    )  # fmt: skip
    for j, col in enumerate(cols):
        frame[col] = _floats(out[f"v{j}"])
    frame = frame.sort_values(["_pos", "ds"], kind="stable")
    fc = frame[frame[_KIND] == 0][["unique_id", "ds", *cols]].reset_index(drop=True)
    aliases = [c for c in cols if "-lo-" not in c and "-hi-" not in c]
    fv = frame[frame[_KIND] == 1][["unique_id", "ds", "y", *aliases]].reset_index(drop=True)
    return fc, fv


def _floats(col: pd.Series) -> np.ndarray:
    """float64 array from a (possibly nullable / Arrow) column; missing values become NaN."""
    return col.to_numpy(dtype=np.float64, na_value=np.nan)
