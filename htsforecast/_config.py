"""Settings of one ``htsforecast run``: defaults < TOML file < command line, each type-checked.

Every setting has one entry in :data:`SETTINGS` (its type, its range and its help); the same
check runs whether a value comes from ``--config run.toml``, from the command line or from
Python, and its error names the setting and where the value came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from htsforecast.errors import DataError
from htsforecast.reconciliation._registry import default_methods

__all__ = ["RunConfig", "SETTINGS"]


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None and name in _AUTO:
        return value  # type: ignore[return-value]
    raise DataError(
        f"setting '{name}' must be true or false, got {value!r} ({type(value).__name__}); in "
        "TOML write true/false without quotes."
    )


#: Boolean settings whose None means "decided from the data" (documented on RunConfig).
_AUTO = ("nonnegative",)


def _int(minimum: int | None = None, none_ok: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> int | None:
        if value is None and none_ok:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(
                f"setting '{name}' must be a whole number, got {value!r} "
                f"({type(value).__name__}); in TOML write it without quotes."
            )
        if minimum is not None and value < minimum:
            raise DataError(f"setting '{name}' must be >= {minimum}, got {value}.")
        return int(value)

    return check


def _str(
    none_ok: bool = False, choices: tuple[str, ...] | None = None
) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> str | None:
        if value is None and none_ok:
            return None
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"setting '{name}' must be a non-empty text, got {value!r} ({type(value).__name__})."
            )
        if choices is not None and value not in choices:
            raise DataError(f"setting '{name}' must be one of {list(choices)}, got {value!r}.")
        return value

    return check


def _names(name: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        raise DataError(
            f"setting '{name}' must be a comma-separated text or a list of names, got {value!r}."
        )
    out = tuple(dict.fromkeys(x.strip() for x in items if x.strip()))
    if not out:
        raise DataError(f"setting '{name}' is empty.")
    return out


def _levels(name: str, value: Any) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    items = [items] if isinstance(items, int) and not isinstance(items, bool) else items
    if not isinstance(items, list | tuple):
        raise DataError(f"setting '{name}' must be a list of percentages such as 80,95.")
    out: set[int] = set()
    for x in items:
        text = x.strip() if isinstance(x, str) else x
        try:
            lv = int(text) if isinstance(text, str) else text
        except ValueError:
            lv = None
        if isinstance(lv, bool) or not isinstance(lv, int) or not 0 < lv < 100:
            raise DataError(
                f"setting '{name}' must hold whole percentages strictly between 0 and 100, got "
                f"{x!r} in {value!r} (e.g. 80,95)."
            )
        out.add(lv)
    return tuple(sorted(out))  # repeated levels are the same level


def _engine(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = _str()(name, value)
    if text in ("dask", "spark") or text.startswith("dask://") or text.startswith("tcp://"):
        return text
    raise DataError(
        f"setting '{name}' must be 'dask' (a local cluster of --n-jobs workers), "
        f"'dask://host:port' (an existing scheduler) or 'spark', got {value!r}."
    )


def _n_jobs(name: str, value: Any) -> int:
    n = _int()(name, value)
    if n == 0:
        raise DataError(f"setting '{name}' must be a positive number of jobs or -1 (all cores).")
    return int(n)


@dataclass(frozen=True)
class _Setting:
    check: Callable[[str, Any], Any]
    help: str


#: name -> (check, help). The CLI options, the TOML keys and :class:`RunConfig` use these names.
SETTINGS: dict[str, _Setting] = {
    "data": _Setting(_str(none_ok=True), "bottom-level data, CSV or Parquet"),
    "dataset": _Setting(_str(), "bundled data set used without --data"),
    "formula": _Setting(_str(none_ok=True), "hierarchy, e.g. '(state / county) * floor'"),
    "time_col": _Setting(_str(), "date column"),
    "target_col": _Setting(_str(), "value column"),
    "freq": _Setting(_str(none_ok=True), "pandas frequency alias: MS, QS, W-SUN, D ..."),
    "h": _Setting(_int(1, none_ok=True), "forecast horizon (default: one season)"),
    "models": _Setting(_names, "base models"),
    "methods": _Setting(_names, "reconciliation methods"),
    "level": _Setting(_levels, "interval levels in percent"),
    "cv_windows": _Setting(_int(0, none_ok=True), "CV origins; 0 = forecast only"),
    "metric": _Setting(_str(), "selection metric"),
    "nonnegative": _Setting(
        _bool, "non-negative forecasts and intervals for every method (default: on for counts)"
    ),
    "n_jobs": _Setting(_n_jobs, "parallel jobs (-1: all cores)"),
    "out": _Setting(_str(), "output folder"),
    "plots": _Setting(_bool, "write PNG plots"),
    "fill": _Setting(_str(none_ok=True, choices=("zero",)), "gap policy: zero"),
    "format": _Setting(_str(none_ok=True, choices=("csv", "parquet")), "output file format"),
    "engine": _Setting(_engine, "where base models run: dask, dask://host:port, spark"),
    "encoding": _Setting(_str(), "text encoding of a CSV --data file"),
    "date_format": _Setting(_str(none_ok=True), "strftime format of the date column"),
    "intervals": _Setting(
        _str(choices=("gaussian", "bootstrap", "none")), "reconciled interval kind"
    ),
    "calibrate": _Setting(
        _bool, "rescale the intervals by minimum-CRPS factors from the CV windows (default on)"
    ),
    "allow_incoherent": _Setting(_bool, "let the unreconciled 'base' forecasts be chosen"),
    "allow_fallback": _Setting(_bool, "accept a model whose nodes mostly fell back"),
    "plot_nodes": _Setting(_names, "node ids to plot"),
    "save_model": _Setting(_str(none_ok=True), "folder to save the fitted pipeline in"),
    "temporal": _Setting(
        _str(none_ok=True),
        "temporal hierarchy: 'auto' or factors such as 12,4,1 (forecasts every temporal level)",
    ),
    "exog": _Setting(_str(none_ok=True), "regressor columns and rules, e.g. price:wmean,promo:sum"),
    "future": _Setting(_str(none_ok=True), "bottom-level regressor rows for the h future periods"),
    "holidays": _Setting(_str(none_ok=True), "holiday indicator: US, or US:state (subdivision key)"),
}


@dataclass(frozen=True)
class RunConfig:
    """Settings of one run; every value is checked on construction (see :data:`SETTINGS`).

    ``data=None`` uses the bundled ``dataset`` with its own formula and frequency.
    ``nonnegative=None`` turns non-negative reconciliation on when the data are counts (every
    target value a non-negative whole number) and off otherwise.
    ``cv_windows=None`` evaluates on the windows of :func:`htsforecast.selection.default_cv_plan`
    (up to three recent origins one season apart on small data, one window on large data) and
    skips the evaluation with a notice when none fits; an explicit number that does not fit is an
    error (explicit windows are ``h`` apart).
    """

    data: str | None = None
    dataset: str = "radon_panel"
    formula: str | None = None
    time_col: str = "ds"
    target_col: str = "y"
    freq: str | None = None
    h: int | None = None
    models: tuple[str, ...] = ("ets", "pooled_median")
    methods: tuple[str, ...] = default_methods()
    level: tuple[int, ...] = (80, 95)
    cv_windows: int | None = None
    metric: str = "mase"
    nonnegative: bool | None = None
    n_jobs: int = -1
    out: str = "htsforecast-out"
    plots: bool = True
    fill: str | None = None
    format: str | None = None
    engine: str | None = None
    encoding: str = "utf-8"
    date_format: str | None = None
    intervals: str = "gaussian"
    calibrate: bool = True
    allow_incoherent: bool = False
    allow_fallback: bool = False
    plot_nodes: tuple[str, ...] | None = None
    save_model: str | None = None
    temporal: str | None = None
    exog: str | None = None
    future: str | None = None
    holidays: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "plot_nodes" and value is None:
                continue
            object.__setattr__(self, f.name, SETTINGS[f.name].check(f.name, value))

    @classmethod
    def from_sources(
        cls, config_file: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> RunConfig:
        """Defaults, then the TOML file, then ``overrides`` (keys with value None are ignored)."""
        values: dict[str, Any] = {}
        if config_file is not None:
            values.update(_read_toml(config_file))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        unknown = sorted(set(values) - set(SETTINGS))
        if unknown:
            raise DataError(f"unknown setting(s) {unknown}; known settings are {sorted(SETTINGS)}.")
        return cls(**values)


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
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"config file {path!r} is not valid TOML: {exc}") from None
    except IsADirectoryError:
        raise DataError(f"config file {path!r} is a directory.") from None
    return {k.replace("-", "_"): v for k, v in data.get("run", data).items()}
