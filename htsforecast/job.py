"""The whole job in one call: data -> hierarchy -> base forecasts -> every method -> CV -> files.

This is what ``htsforecast run`` executes (the CLI only parses arguments into a
:class:`RunConfig`). Steps:

1. load the bottom-level data (a bundled data set, or a CSV/Parquet file with a formula),
2. aggregate it to every node of the hierarchy,
3. rolling-origin cross-validation of every model x reconciliation method
   (:func:`htsforecast.cross_validate`) and the choice of the best pair by one metric,
4. base forecasts on the full history reconciled by every method,
5. write ``forecasts.csv`` (``unique_id, ds, model, method, yhat`` + interval columns),
   ``accuracy.csv`` (``level, model, method, metric, value``), ``selection.json`` and PNG plots.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from htsforecast.errors import DataError
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
    "auto": "per-node CV choice among combo/ets/arima/theta/lgbm, and croston/adida/imapa/tsb "
    "on intermittent nodes (see htsforecast.models.auto_model; lighter on large data)",
}
#: Reconciliation method names accepted by ``--methods`` (read from the one registry,
#: :mod:`htsforecast.reconciliation._registry`).
METHODS: dict[str, str] = {name: spec.doc for name, spec in _registry.methods().items()}
_DEFAULT_METHODS = _registry.default_methods()


@dataclass(frozen=True)
class RunConfig:
    """Settings of one run (CLI options / ``--config run.toml`` keys have the same names).

    ``data=None`` uses the bundled ``dataset`` with its own formula and frequency.
    """

    data: str | None = None
    dataset: str = "radon_panel"
    formula: str | None = None
    time_col: str = "ds"
    target_col: str = "y"
    freq: str | None = None
    h: int | None = None
    models: tuple[str, ...] = ("ets",)
    methods: tuple[str, ...] = _DEFAULT_METHODS
    level: tuple[int, ...] = (80, 95)
    cv_windows: int = 1
    metric: str = "mase"
    nonnegative: bool = False
    n_jobs: int = -1
    out: str = "htsforecast-out"
    plots: bool = True

    @classmethod
    def from_sources(
        cls, config_file: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> RunConfig:
        """Defaults, then the TOML file, then ``overrides`` (keys with value None are ignored)."""
        values: dict[str, Any] = {}
        if config_file is not None:
            values.update(_read_toml(config_file))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"unknown setting(s) {unknown}; known settings are {sorted(known)}.")
        for key in ("models", "methods"):
            if isinstance(values.get(key), str):
                values[key] = tuple(s.strip() for s in values[key].split(",") if s.strip())
        if isinstance(values.get("level"), str | int):
            values["level"] = tuple(int(s) for s in str(values["level"]).split(",") if s.strip())
        for key in ("models", "methods", "level"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` produced: frames in memory and the files written."""

    forecasts: pd.DataFrame
    accuracy: pd.DataFrame
    selection: Any
    summary: pd.DataFrame
    files: list[Path] = field(default_factory=list)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise DataError(
                "reading --config needs Python >= 3.11 or `pip install tomli`."
            ) from None
    with open(path, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"config file {path!r} is not valid TOML: {exc}") from None
    return {k.replace("-", "_"): v for k, v in data.get("run", data).items()}


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
        ProphetModel,
        SeasonalNaive,
        StatsForecastModel,
        auto_model,
        intermittent_models,
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
        **{k: lambda k=k: intermittent_models()[k] for k in ("croston", "adida", "imapa", "tsb")},
        "lgbm": lambda: MLForecastModel(season_length=m),
        "combo": lambda: Combination({k: builders[k]() for k in ("ets", "arima", "theta")}),
        "auto": lambda: auto_model(m, n_obs),
    }
    _check_names(names, builders, "model", MODELS)
    return {name: builders[name]() for name in names}


def make_methods(names: tuple[str, ...], nonnegative: bool = False) -> dict[str, Any]:
    """Build the reconciliation methods named in the registry (see :data:`METHODS`).

    ``nonnegative`` applies to every method (bottom-up and top-down clip, MinTrace re-projects).
    """
    return _registry.build_methods(names, nonnegative)


def _check_names(names, known: Mapping[str, Any], what: str, docs: Mapping[str, str]) -> None:
    if not names:
        raise DataError(f"no {what}s given; choose from {', '.join(docs)}.")
    bad = [n for n in names if n not in known]
    if bad:
        raise DataError(f"unknown {what}(s) {bad}; choose from {', '.join(docs)}.")


def _load(cfg: RunConfig) -> tuple[pd.DataFrame, str, str]:
    """Bottom-level frame, formula and frequency."""
    if cfg.data is None:
        from htsforecast.datasets import load_dataset

        ds = load_dataset(cfg.dataset)
        return ds.data, cfg.formula or ds.formula, cfg.freq or ds.freq
    path = Path(cfg.data)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist.")
    if cfg.formula is None or cfg.freq is None:
        raise DataError(
            "--data needs --formula (e.g. '(state / county) * floor') and --freq "
            "(a pandas alias such as MS, QS, D); they are never guessed."
        )
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path)
    if cfg.time_col in df.columns:
        df[cfg.time_col] = to_datetime(df, cfg.time_col)
    return df, cfg.formula, cfg.freq


def run(
    cfg: RunConfig, progress: bool | None = None, echo: Callable[[str], None] = print
) -> RunResult:
    """Execute the job described by ``cfg`` and write its files into ``cfg.out``.

    Returns
    -------
    RunResult
    """
    from htsforecast._cv import cross_validate
    from htsforecast._forecast import forecast
    from htsforecast.hierarchy import Hierarchy
    from htsforecast.models import season_length_for
    from htsforecast.reconciliation import reconcile
    from htsforecast.selection import select_best
    from htsforecast.validation import validate_panel

    metrics = ("mase", "rmse", "mae", *(f"coverage_{lv}" for lv in sorted(cfg.level)))
    if cfg.metric not in metrics:
        raise DataError(f"unknown selection metric {cfg.metric!r}; choose from {list(metrics)}.")
    df, formula, freq = _load(cfg)
    hier = Hierarchy.from_formula(formula)
    Y = hier.aggregate(df, time_col=cfg.time_col, target_col=cfg.target_col, freq=freq)
    m = season_length_for(freq)
    if cfg.h is not None and int(cfg.h) < 1:
        raise DataError(f"h must be a positive number of periods, got {cfg.h!r}.")
    h = cfg.h if cfg.h is not None else max(m, 1)
    models = make_models(cfg.models, m, n_obs=len(Y))
    methods = make_methods(cfg.methods, cfg.nonnegative)
    level = sorted(cfg.level)
    echo(
        f"{hier.n_nodes} series ({hier.n_bottom} bottom) x {Y['ds'].nunique()} periods, "
        f"formula {formula!r}, freq {freq}; h={h}, {cfg.cv_windows} CV window(s), "
        f"models {list(models)}, methods {list(methods)}"
    )
    panel = validate_panel(Y, freq, nodes=hier.node_ids)  # once: CV and the final fit share it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cv = cross_validate(
            panel, hier, models, methods, h=h, n_windows=cfg.cv_windows, freq=freq, level=level,
            metrics=("mase", "rmse", "mae", "coverage"), season_length=m, n_jobs=cfg.n_jobs,
            progress=progress,
        ).table  # fmt: skip
    selection = select_best(cv, cfg.metric)
    base = forecast(panel, models, h=h, freq=freq, level=level, n_jobs=cfg.n_jobs,
                    progress=progress)  # fmt: skip
    forecasts = reconcile(base, hier, methods=methods, level=level).forecasts
    summary = _summary(cv, selection, cfg.metric)
    files = _write(cfg, hier, Y, forecasts, cv, selection)
    echo(f"\n{cfg.metric} by level (cross-validation, model {selection.model!r}):")
    echo(summary.round(3).to_string())
    echo(
        f"\nchosen: model={selection.model!r} method={selection.method!r} "
        f"({cfg.metric} over all series {selection.scores['all']:.3f})"
    )
    echo(f"wrote {', '.join(str(p) for p in files)}")
    return RunResult(forecasts, cv, selection, summary, files)


def _summary(cv: pd.DataFrame, selection: Any, metric: str) -> pd.DataFrame:
    sub = cv[(cv["metric"] == metric) & (cv["model"] == selection.model)]
    return sub.pivot_table(index="level", columns="method", values="value", sort=False)


def _write(cfg: RunConfig, hier, Y, forecasts, cv, selection) -> list[Path]:  # noqa: ANN001
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "forecasts.csv", out / "accuracy.csv", out / "selection.json"]
    forecasts.to_csv(files[0], index=False)
    cv.to_csv(files[1], index=False)
    info = {
        "metric": selection.metric,
        "model": selection.model,
        "method": selection.method,
        "score": selection.scores["all"],
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
    }
    files[2].write_text(json.dumps(info, indent=2, default=str))
    if cfg.plots:
        files += _plots(out, hier, Y, forecasts, cv, selection, cfg.metric)
    return files


def _plots(out: Path, hier, Y, forecasts, cv, selection, metric) -> list[Path]:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from htsforecast.plotting import plot_accuracy, plot_forecasts, plot_S

    paths = [out / f"accuracy_{metric}.png", out / "forecasts.png"]
    ax = plot_accuracy(cv[cv["model"] == selection.model], metric)
    ax.figure.savefig(paths[0], dpi=100)
    shown = ["base", *([selection.method] if selection.method != "base" else []), "bu"]
    fig = plot_forecasts(
        Y, forecasts[forecasts["model"] == selection.model], hier=hier,
        methods=list(dict.fromkeys(shown)), interval=max(selection_levels(forecasts), default=None),
    )  # fmt: skip
    fig.savefig(paths[1], dpi=100)
    if hier.n_nodes <= 2000:
        paths.append(out / "S.png")
        plot_S(hier).figure.savefig(paths[-1], dpi=100)
    plt.close("all")
    return paths


def selection_levels(forecasts: pd.DataFrame) -> list[int]:
    """Interval levels present in a tidy forecast frame (``yhat_lo_{L}`` columns)."""
    return sorted(int(c.rsplit("_", 1)[1]) for c in forecasts.columns if c.startswith("yhat_lo_"))
