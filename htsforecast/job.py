"""The whole job in one call: data -> hierarchy -> base forecasts -> every method -> CV -> files.

This is what ``htsforecast run`` executes (the CLI only parses arguments into a
:class:`RunConfig`). Steps, each a helper below:

1. check the settings and the output folder, read the data (keys as written),
2. aggregate it to every node of the hierarchy (once),
3. base forecasts on the full history, reconciled by every method,
4. rolling-origin cross-validation of every model x method and the choice of the best coherent
   pair by one metric (skipped with ``cv_windows=0``),
5. write every file into a temporary folder that replaces ``out`` only when all are written:
   ``forecasts``, ``best_forecasts`` and ``accuracy`` (CSV or Parquet), ``selection.json``,
   ``run.json`` (what produced the folder) and PNG plots.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from htsforecast._config import RunConfig
from htsforecast._exog_options import exog_spec, job_regressors
from htsforecast._io import (
    STAMP,
    check_output_dir,
    file_sha256,
    is_parquet,
    output_transaction,
    read_table,
)
from htsforecast.errors import DataError, HTSError
from htsforecast.reconciliation import _registry
from htsforecast.validation import to_datetime

__all__ = ["RunConfig", "RunResult", "run", "make_models", "make_methods", "MODELS", "METHODS"]

#: Model names accepted by ``--models`` and what they build (``m`` = season length).
MODELS: dict[str, str] = {
    "ets": "AutoETS(season_length=m, model='ZZA', damped=False): additive season, fast",
    "ets_full": "AutoETS(season_length=m): statsforecast's full ETS search (slower)",
    "arima": "AutoARIMA(season_length=m)",
    "theta": "DynamicOptimizedTheta(season_length=m)",
    "snaive": "SeasonalNaive(m)",
    "naive": "Naive()",
    "mean": "Mean()",
    "prophet": "ProphetModel() (slow: one Prophet fit per node)",
    "croston": "IntermittentModel(CrostonOptimized()): intermittent demand",
    "adida": "IntermittentModel(ADIDA()): intermittent demand",
    "imapa": "IntermittentModel(IMAPA()): intermittent demand",
    "tsb": "IntermittentModel(TSB(alpha_d=0.1, alpha_p=0.1)): intermittent demand",
    "lgbm": "MLForecastModel(season_length=m): one LightGBM over all nodes (extra 'ml')",
    "combo": "Combination of ets, arima and theta, equal weights",
    "pooled": "PartialPooling(m): bottom nodes as empirical-Bayes shrunk shares of their "
    "parent's ets forecast (sparse bottom series)",
    "pooled_median": "PartialPooling(m, point='median'): pooled, with the predictive median as "
    "the bottom point forecast (best for MAE/MASE on sparse counts; medians do not add up)",
    "auto": "combo (ets+arima+theta) on regular nodes; per-node CV choice among croston/adida/"
    "imapa/tsb/lgbm_median on intermittent nodes (htsforecast.models.auto_model; lighter on "
    "large data)",
}
#: Reconciliation method names accepted by ``--methods`` (read from the one registry,
#: :mod:`htsforecast.reconciliation._registry`).
METHODS: dict[str, str] = {name: spec.doc for name, spec in _registry.methods().items()}


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` produced: frames in memory and the files written."""

    forecasts: pd.DataFrame
    best: pd.DataFrame
    accuracy: pd.DataFrame | None
    selection: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def make_models(
    names: tuple[str, ...], season_length: int, n_obs: int | None = None
) -> dict[str, Any]:
    """Build the forecasters named in :data:`MODELS` (``n_obs``: data size, for ``auto``)."""
    from statsforecast.models import AutoARIMA, AutoETS, DynamicOptimizedTheta

    from htsforecast.models import (
        Combination,
        Mean,
        MLForecastModel,
        Naive,
        PartialPooling,
        ProphetModel,
        SeasonalNaive,
        StatsForecastModel,
        auto_model,
    )

    m = season_length
    builders: dict[str, Callable[[], Any]] = {
        "ets": lambda: StatsForecastModel(
            AutoETS(season_length=m, model="ZZA" if m > 1 else "ZZN", damped=False)
        ),
        "ets_full": lambda: StatsForecastModel(AutoETS(season_length=m)),
        "arima": lambda: StatsForecastModel(AutoARIMA(season_length=m)),
        "theta": lambda: StatsForecastModel(DynamicOptimizedTheta(season_length=m)),
        "snaive": lambda: SeasonalNaive(m),
        "naive": lambda: Naive(),
        "mean": lambda: Mean(),
        "prophet": lambda: ProphetModel(),
        **{k: partial(_intermittent, k) for k in ("croston", "adida", "imapa", "tsb")},
        "lgbm": lambda: MLForecastModel(season_length=m),
        "combo": lambda: Combination({k: builders[k]() for k in ("ets", "arima", "theta")}),
        "auto": lambda: auto_model(m, n_obs),
        "pooled": lambda: PartialPooling(m),
        "pooled_median": lambda: PartialPooling(m, point="median"),
    }
    _check_names(names, builders, "model", MODELS)
    return {name: builders[name]() for name in names}


def _intermittent(name: str) -> Any:
    from htsforecast.models import intermittent_models

    return intermittent_models()[name]


def make_methods(names: tuple[str, ...], nonnegative: bool = False) -> dict[str, Any]:
    """Build the reconciliation methods named in the registry (see :data:`METHODS`);
    ``("all",)`` builds every one.

    ``nonnegative`` applies to every method (bottom-up and top-down clip, MinTrace re-projects).
    """
    if tuple(names) == ("all",):
        names = tuple(METHODS)
    return _registry.build_methods(names, nonnegative)


def _check_names(names, known: Mapping[str, Any], what: str, docs: Mapping[str, str]) -> None:
    if not names:
        raise DataError(f"no {what}s given; choose from {', '.join(docs)}.")
    bad = [n for n in names if n not in known]
    if bad:
        raise DataError(f"unknown {what}(s) {bad}; choose from {', '.join(docs)}.")


#: Share of a model's nodes that may fall back before the run fails (unless ``allow_fallback``).
FALLBACK_LIMIT = 0.5


@dataclass(frozen=True)
class _Input:
    """The bottom-level data and how to read it."""

    df: pd.DataFrame
    formula: str
    freq: str
    source: dict[str, Any]


def _load(cfg: RunConfig) -> _Input:
    """Bottom-level frame, formula, frequency and where they came from."""
    if cfg.data is None:
        from htsforecast.datasets import load_dataset

        ds = load_dataset(cfg.dataset)
        return _Input(ds.data, cfg.formula or ds.formula, cfg.freq or ds.freq,
                      {"dataset": cfg.dataset})  # fmt: skip
    if cfg.formula is None or cfg.freq is None:
        raise DataError(
            "--data needs --formula (e.g. '(state / county) * floor') and --freq "
            "(a pandas alias such as MS, QS, D); they are never guessed."
        )
    from htsforecast.hierarchy import Hierarchy

    keys = Hierarchy.from_formula(cfg.formula).columns
    df = read_table(cfg.data, keys, cfg.time_col, cfg.target_col, cfg.encoding)
    if cfg.date_format is not None:
        try:
            df[cfg.time_col] = pd.to_datetime(df[cfg.time_col], format=cfg.date_format)
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"time column '{cfg.time_col}' does not match --date-format: {exc}"
            ) from None
    else:
        df[cfg.time_col] = to_datetime(df, cfg.time_col)
    source = {"data": str(Path(cfg.data).resolve()), "sha256": file_sha256(cfg.data)}
    return _Input(df, cfg.formula, cfg.freq, source)


def _cv_windows(
    cfg: RunConfig, n_dates: int, h: int, m: int, n_obs: int, echo: Callable[[str], None]
) -> tuple[int, int]:
    """Windows to evaluate and their spacing: ``cv_windows`` (``h`` apart), or the default plan
    of :func:`htsforecast.selection.default_cv_plan` (0 windows with a notice when none fits)."""
    from htsforecast.selection import default_cv_plan

    fit = max(0, (n_dates - h - 1 - m) // h + 1)  # expanding windows, h apart, >= m + 1 to train
    if cfg.cv_windows is None:
        windows, step = default_cv_plan(n_dates, h, m, n_obs)
        if windows >= 1:
            return windows, step
        echo(
            f"notice: {n_dates} periods are too few to evaluate h={h} (training needs "
            f"{m + 1} periods before the test window); forecasting without evaluation."
        )
        return 0, h
    if cfg.cv_windows > fit:
        raise DataError(
            f"--cv-windows {cfg.cv_windows} does not fit {n_dates} periods with --h {h}: "
            f"{fit} window(s) fit (each trains on at least {m + 1} periods). Use --cv-windows "
            f"{fit}" + (", or a smaller --h." if fit else " to forecast without evaluation.")
        )
    return cfg.cv_windows, h


def run(
    cfg: RunConfig, progress: bool | None = None, echo: Callable[[str], None] = print
) -> RunResult:
    """Execute the job described by ``cfg`` and write its files into ``cfg.out``.

    Returns
    -------
    RunResult
    """
    from htsforecast import forecast, reconcile
    from htsforecast.engines import open_engine
    from htsforecast.hierarchy import Hierarchy
    from htsforecast.models import season_length_for

    metrics = ("mase", "rmse", "mae", *(f"coverage_{lv}" for lv in cfg.level))
    if cfg.metric not in metrics:
        raise DataError(f"unknown selection metric {cfg.metric!r}; choose from {list(metrics)}.")
    out = check_output_dir(cfg.out)
    if cfg.save_model is not None:
        check_output_dir(cfg.save_model, marker="pipeline.pkl", option="--save-model")
    data = _load(cfg)
    hier = Hierarchy.from_formula(data.formula)
    if cfg.temporal is not None:  # the temporal-hierarchy job: htsforecast._temporal_job
        Y = hier.aggregate(data.df, time_col=cfg.time_col, target_col=cfg.target_col,
                           freq=data.freq, fill=cfg.fill)  # fmt: skip
        return _run_temporal(cfg, data, hier, Y, out, echo)
    panel = hier.aggregate(data.df, time_col=cfg.time_col, target_col=cfg.target_col,
                           freq=data.freq, fill=cfg.fill, as_panel=True)  # fmt: skip
    m = season_length_for(data.freq)
    h = cfg.h if cfg.h is not None else max(m, 1)
    spec = exog_spec(cfg.exog, cfg.holidays)  # regressors: Y and X_future frames
    Y, X_future = job_regressors(cfg, spec, hier, data.df, data.freq, h) if spec else (panel, None)
    models = make_models(cfg.models, m, n_obs=panel.n_obs)
    nonnegative = _nonnegative(cfg, data.df[cfg.target_col], echo)
    methods = make_methods(cfg.methods, nonnegative)
    n_dates = len(panel.dates)
    windows, step = _cv_windows(cfg, n_dates, h, m, panel.n_obs, echo)
    _notice_unused(data.df, hier.columns, cfg, echo)
    data = replace(data, df=data.df.iloc[:0])  # its rows live on in the panel (memory at M5)
    echo(
        f"{hier.n_nodes} series ({hier.n_bottom} bottom) x {n_dates} periods, "
        f"formula {data.formula!r}, freq {data.freq}; h={h}, {windows} CV window(s) "
        f"{step} apart, "
        f"models {list(models)}, methods {list(methods)}"
    )
    level = list(cfg.level)
    intervals = None if cfg.intervals == "none" else cfg.intervals
    with open_engine(cfg.engine, cfg.n_jobs) as engine:
        fkw: dict[str, Any] = {"engine": engine} if engine is not None else {}
        base = forecast(Y, models, h=h, freq=data.freq, level=level, n_jobs=cfg.n_jobs,
                        progress=progress, X_future=X_future, **fkw)  # fmt: skip
        _check_fallbacks(base.fallbacks, hier.n_nodes, cfg.allow_fallback)
        rec = reconcile(base, hier, methods=methods, level=level, intervals=cast(Any, intervals))
        cv_res = _evaluate(Y, hier, models, methods, h, (windows, step), data.freq, level, m,
                           cfg, progress, fkw, intervals)  # fmt: skip
    selection = _select(cv_res, cfg, list(models), list(methods), (h, hier.n_nodes), echo)
    cv = None if cv_res is None else cv_res.table
    forecasts = _calibrate(rec.forecasts, cv_res, cfg, nonnegative, selection, echo,
                           _node_scales(panel, m))  # fmt: skip
    del rec, cv_res  # calibrated in place; the CV forecasts are done with (memory at M5 size)
    best = _best_frame(forecasts, hier, selection)
    settings = {**asdict(cfg), "h": h, "freq": data.freq, "formula": data.formula,
                "cv_windows": windows, "cv_step": step, **data.source}  # fmt: skip
    selection["settings"] = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    fmt = cfg.format or ("parquet" if cfg.data and is_parquet(cfg.data) else "csv")
    with output_transaction(out) as tmp:
        _write(tmp, fmt, forecasts, best, cv, selection)
        if cfg.plots:
            _plots(tmp, hier, _history(panel), forecasts, cv, selection, cfg)
        _stamp(tmp, settings)
    if cfg.save_model is not None:
        _save_model(cfg, hier, base, methods, selection, intervals)
    files = sorted(out.iterdir())
    _report(echo, cv, selection, cfg.metric)
    echo(f"wrote {out}/: {', '.join(p.name for p in files)}")
    return RunResult(forecasts, best, cv, selection, files)


def _save_model(cfg: RunConfig, hier, base, methods, selection, intervals) -> None:
    """Save the fitted run (base forecasts up to h, residuals, methods, the choice)."""
    from htsforecast.pipeline import Pipeline

    pipe = Pipeline.from_forecasts(hier, base, methods, intervals=cast(Any, intervals))
    choice = {k: v for k, v in selection.items() if k != "settings"}
    pipe.selection_ = choice  # type: ignore[attr-defined]  # the run's choice travels with it
    pipe.save(str(cfg.save_model))


def predict(
    model: str,
    out: str,
    h: int | None = None,
    fmt: str = "csv",
    echo: Callable[[str], None] = print,
) -> RunResult:
    """``htsforecast predict``: forecasts of a saved run (``run --save-model``), no refit.

    Writes ``forecasts`` (every model x method), ``best_forecasts`` (the pipeline the run chose)
    and ``run.json`` into ``out``, as one transaction.
    """
    from htsforecast.pipeline import Pipeline

    target = check_output_dir(out)
    pipe = Pipeline.load(model)
    rec = pipe.predict(h)
    selection = dict(getattr(pipe, "selection_", None) or {})
    forecasts = rec.forecasts
    if "calibration" in selection:  # the run's CV interval factors
        from htsforecast._calibration import calibrate_intervals

        cal = selection["calibration"]
        forecasts = calibrate_intervals(forecasts, pd.DataFrame(cal["factors"]),
                                        cal["nonnegative"], scale=cal.get("scale"))  # fmt: skip
    best = _best_frame(forecasts, pipe.hier, selection) if selection else None
    settings = {"model": str(Path(model).resolve()), "h": h or pipe.h_max, "format": fmt}
    with output_transaction(target) as tmp:
        _write(tmp, fmt, forecasts, best, None, selection)
        _stamp(tmp, settings)
    files = sorted(target.iterdir())
    echo(f"wrote {target}/: {', '.join(p.name for p in files)}")
    return RunResult(forecasts, best, None, selection, files)


def _run_temporal(cfg, data, hier, Y, out, echo) -> RunResult:
    from htsforecast._temporal_job import run_temporal

    def factory(name: str, season: int) -> Any:
        return make_models((name,), season, n_obs=len(Y))[name]

    fc, acc = run_temporal(cfg, hier, Y, data.freq, factory, echo)
    with output_transaction(out) as tmp:
        fc.to_csv(tmp / "forecasts.csv", index=False)
        acc.to_csv(tmp / "accuracy.csv", index=False)
        _stamp(tmp, {**asdict(cfg), "freq": data.freq, "formula": data.formula, **data.source})
    files = sorted(out.iterdir())
    echo(f"wrote {out}/: {', '.join(p.name for p in files)}")
    return RunResult(fc, fc.iloc[:0], acc, {}, files)


def _evaluate(Y, hier, models, methods, h, plan, freq, level, m, cfg, progress, fkw, intervals):
    windows, step = plan
    if windows == 0:
        return None
    from htsforecast import cross_validate

    cv = cross_validate(
        Y, hier, models, methods, h=h, n_windows=windows, step_size=step, freq=freq, level=level,
        metrics=("mase", "rmse", "mae", "coverage"), season_length=m, n_jobs=cfg.n_jobs,
        progress=progress, forecast_kwargs=fkw, reconcile_kwargs={"intervals": intervals},
        exog=list(exog_spec(cfg.exog, cfg.holidays)),
    )  # fmt: skip
    return cv


def _calibrate(forecasts, cvres, cfg: RunConfig, nonnegative: bool, selection, echo, scale):
    """Intervals rescaled per horizon step by minimum-CRPS factors from the CV windows.

    ``cfg.calibrate``; see :mod:`htsforecast._calibration`. The factors of every (model, method,
    level, step) go into ``selection["calibration"]`` (so ``htsforecast predict`` applies them
    too); without CV windows the intervals stay as they are.
    """
    from htsforecast._calibration import calibrate_intervals, interval_factors

    if not cfg.calibrate or cvres is None or not cfg.level or cfg.intervals == "none":
        return forecasts
    factors = interval_factors(cvres.forecasts, cfg.level, scale=scale, basis="auto")
    cal = {"nonnegative": nonnegative, "factors": factors.to_dict(orient="records")}
    if (factors["basis"] == "scale").any():  # predict rebuilds those widths from the scales
        cal["scale"] = {k: v for k, v in scale.items() if np.isfinite(v) and v > 0}
    selection["calibration"] = cal
    chosen = factors[(factors["model"] == selection["model"])
                     & (factors["method"] == selection["method"])
                     & (factors["level"] == cfg.level[0])]  # fmt: skip
    echo(f"intervals calibrated on the CV windows (minimum CRPS, per horizon step, "
         f"{chosen['basis'].iloc[0] if len(chosen) else 'interval'} basis): width x "
         + " ".join(f"{c:.2f}" for c in chosen["factor"]))  # fmt: skip
    return calibrate_intervals(forecasts, factors, nonnegative, copy=False, scale=scale)


def _node_scales(panel: Any, m: int) -> dict[str, float]:
    """In-sample seasonal-naive MAE per node (the calibration's scale-free weights)."""
    from htsforecast.metrics import seasonal_naive_scale

    if panel.values.shape[1] <= m:
        return {}
    scale = np.atleast_1d(seasonal_naive_scale(panel.values, m))
    return dict(zip(map(str, panel.ids), scale.tolist(), strict=True))


def _nonnegative(cfg: RunConfig, y: pd.Series, echo: Callable[[str], None]) -> bool:
    """``cfg.nonnegative``, or on for count data (non-negative whole numbers) when unset."""
    if cfg.nonnegative is not None:
        return cfg.nonnegative
    values = y.to_numpy(dtype=float)
    counts = bool(np.all(values >= 0) and np.all(values == np.round(values)))
    if counts:
        echo("notice: the data are counts: forecasts and intervals are kept non-negative "
             "(--no-nonnegative to turn this off).")  # fmt: skip
    return counts


def _notice_unused(df: pd.DataFrame, keys: tuple[str, ...], cfg: RunConfig, echo) -> None:
    used = {*keys, cfg.time_col, cfg.target_col}
    extra = [str(c) for c in df.columns if c not in used]
    if extra and cfg.data is not None:
        echo(f"notice: column(s) {', '.join(extra)} of the data are not used by any model.")


def _check_fallbacks(fallbacks: pd.DataFrame, n_nodes: int, allow: bool) -> None:
    """Fail when most nodes of a model fell back (the model is effectively not used)."""
    if fallbacks.empty or allow:
        return
    for model, part in fallbacks.groupby("model", sort=False):
        if len(part) > FALLBACK_LIMIT * n_nodes:
            reason = part["reason"].value_counts().index[0]
            raise HTSError(
                f"model {model!r} failed on {len(part)} of {n_nodes} nodes and fell back to "
                f"{part['fallback_model'].iloc[0]} (most common reason: {reason}). Fix the model "
                "settings, or pass --allow-fallback to accept the fallback forecasts."
            )


def _select(cv, cfg: RunConfig, models: list[str], methods: list[str], shape, echo) -> dict:
    """The robust global choice of :func:`htsforecast.selection.choose_pipeline` ('base' only
    with ``allow_incoherent``; ERM only where it is well posed, ``shape = (h, n_nodes)``)."""
    from htsforecast.selection import choose_pipeline, erm_eligible

    if cv is None:
        return {"model": models[0], "method": methods[0], "metric": cfg.metric, "score": None,
                "evaluated": False}  # fmt: skip
    h, n_nodes = shape
    out = choose_pipeline(
        cv.by_window, cfg.metric, allow_incoherent=cfg.allow_incoherent,
        eligible=lambda model, method: method != "erm" or erm_eligible(h, n_nodes),
    )  # fmt: skip
    if "erm" in methods and not erm_eligible(h, n_nodes):
        echo(f"notice: erm is scored but not chosen automatically: closed-form ERM fits its "
             f"matrix on h={h} periods, fewer than the {n_nodes} series (ill-posed).")  # fmt: skip
    if out["rule"].startswith("one-standard-error"):
        echo(f"notice: {out['rule']}.")
    ties = out.get("tied_with", [])
    if ties:
        names = [f"{out['model']}/{out['method']}", *ties]
        echo(
            f"notice: {len(names)} pipelines tie on {cfg.metric} to three decimals "
            f"({', '.join(names[:6])}{' ...' if len(names) > 6 else ''}); {names[0]} is "
            "chosen."
        )
    return out


def _best_frame(fc: pd.DataFrame, hier, selection: dict[str, Any]) -> pd.DataFrame:
    """The chosen pipeline only, with the level and the key columns (``<aggregated>``)."""
    part = fc[(fc["model"] == selection["model"]) & (fc["method"] == selection["method"])]
    keys = hier.keys
    ids = part["unique_id"].astype(str)
    lead = pd.DataFrame({"unique_id": ids.to_numpy()})
    lead["level"] = keys["level"].reindex(ids).to_numpy()
    for col in hier.columns:
        lead[col] = keys[col].reindex(ids).to_numpy()
    rest = part.drop(columns=["unique_id"]).reset_index(drop=True)
    return pd.concat([lead, rest], axis=1)


def _categorical(df: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("unique_id", "model", "method", "level") if c in df.columns]
    return df.astype({c: "category" for c in cols})


def _write(tmp: Path, fmt: str, forecasts, best, cv, selection) -> None:
    def put(frame: pd.DataFrame, name: str) -> None:
        frame = _categorical(frame)
        if fmt == "parquet":
            frame.to_parquet(tmp / f"{name}.parquet", index=False)
        else:
            frame.to_csv(tmp / f"{name}.csv", index=False, float_format="%.10g")

    put(forecasts, "forecasts")
    if best is not None:
        put(best, "best_forecasts")
    if cv is not None:
        put(cv, "accuracy")
    (tmp / "selection.json").write_text(json.dumps(selection, indent=2, default=str))


def _stamp(tmp: Path, settings: Mapping[str, Any]) -> None:
    """``run.json``: what produced this folder (settings, data hash, versions, command)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("htsforecast", "numpy", "pandas", "scipy", "statsforecast", "prophet"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "not installed"
    stamp = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "python": platform.python_version(),
        "versions": versions,
    }
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2, default=str))


def _report(echo, cv, selection: dict[str, Any], metric: str) -> None:
    if cv is not None:
        sub = cv[cv["metric"] == metric]
        for model, part in sub.groupby("model", sort=False):
            table = part.pivot_table(index="level", columns="method", values="value", sort=False)
            echo(f"\n{metric} by level (cross-validation), model {model!r}:")
            echo(table.round(3).to_string())
    how = (
        f"{metric} over all series {selection['score']:.3f}"
        if selection["evaluated"]
        else "not evaluated: the first model and method given"
    )
    echo(f"\nchosen: model={selection['model']!r} method={selection['method']!r} ({how})")


def _history(panel: Any) -> pd.DataFrame:
    """The long ``unique_id, ds, y`` frame of a panel (what the plots draw)."""
    rows, cols = np.nonzero(panel.mask())
    return pd.DataFrame(
        {"unique_id": panel.ids[rows], "ds": panel.dates[cols], "y": panel.values[rows, cols]}
    )


def _save(ax: Any, path: Path) -> None:
    """Save the figure an Axes belongs to."""
    ax.get_figure(root=True).savefig(path, dpi=100)


def _plots(out: Path, hier, Y, forecasts, cv, selection, cfg: RunConfig) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from htsforecast.plotting import plot_accuracy, plot_forecasts, plot_models, plot_S

    top = max(cfg.level, default=None)
    try:
        if cv is not None:
            ax = plot_accuracy(cv[cv["model"] == selection["model"]], cfg.metric)
            _save(ax, out / f"accuracy_{cfg.metric}.png")
        shown = list(dict.fromkeys(["base", selection["method"], "bu"]))
        fig = plot_forecasts(
            Y, forecasts, nodes=cfg.plot_nodes, hier=hier, methods=shown,
            models=[selection["model"]], interval=top,
        )  # fmt: skip
        fig.savefig(out / "forecasts.png", dpi=100)
        if forecasts["model"].nunique() > 1:  # every model, the chosen method, on the total
            ax = plot_models(Y, forecasts, "total", method=selection["method"], interval=top)
            _save(ax, out / "models.png")
        _save(plot_S(hier), out / "S.png")
    finally:
        plt.close("all")
