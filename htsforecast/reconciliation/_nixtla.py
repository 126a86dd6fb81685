"""hierarchicalforecast drop-in: its reconciler objects, its frames, its column names.

A hierarchicalforecast user passes ``reconcile(Y_hat_df, methods=[BottomUp(), MinTrace(...)],
Y_df=Y_df, S_df=S_df, tags=tags)``. This module

- translates hierarchicalforecast's ``BottomUp``, ``TopDown``, ``MiddleOut``, ``MinTrace`` (and
  their ``*Sparse`` twins, ``OptimalCombination``) into htsforecast's methods with the same
  parameters, and rejects the others (``ERM``, ``MinTrace('emint')``) naming ours. Numbers equal
  hierarchicalforecast's dense classes, except ``MinTrace(nonnegative=True)``, where ours is the
  exact non-negative least-squares optimum and its QP answer is not (tested), and its
  ``MinTraceSparse``, which solves iteratively to about 1e-5;
- checks that ``Y_df`` carries the fitted values a method needs, naming the model;
- names reconciled columns as hierarchicalforecast does (``AutoETS/MinTrace_method-mint_shrink``)
  for :meth:`Reconciled.wide` with ``naming="hierarchicalforecast"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import pandas as pd

from htsforecast.errors import ReconciliationError
from htsforecast.reconciliation._methods import BottomUp, MiddleOut, MinTrace, TopDown

__all__ = ["translate_methods", "check_fitted_columns", "hf_name", "wide_hf"]

_OURS = "htsforecast.reconciliation.BottomUp, TopDown, MiddleOut or MinTrace"
_RESIDUAL_METHODS = ("wls_var", "mint_cov", "mint_shrink")


def is_hf(obj: Any) -> bool:
    """True for an object from the hierarchicalforecast package."""
    return type(obj).__module__.split(".")[0] == "hierarchicalforecast"


def _translate(obj: Any) -> Any:
    kind = type(obj).__name__.removesuffix("Sparse")
    if kind == "BottomUp":
        return BottomUp()
    if kind == "TopDown":
        return TopDown(obj.method)
    if kind == "MiddleOut":
        return MiddleOut(obj.middle_level, obj.top_down_method)
    if kind in ("MinTrace", "OptimalCombination") and obj.method != "emint":
        ridge = getattr(obj, "mint_shr_ridge", 2e-8)
        return MinTrace(obj.method, bool(obj.nonnegative), ridge)
    what = f"{type(obj).__name__}(method={obj.method!r})" if kind == "MinTrace" else kind
    raise ReconciliationError(
        f"hierarchicalforecast's {what} has no htsforecast equivalent; use {_OURS} "
        "(e.g. MinTrace('mint_shrink')), or reconcile with hierarchicalforecast itself."
    )


def translate_methods(methods: Mapping[str, Any] | Sequence[Any] | None) -> Any:
    """Replace hierarchicalforecast reconcilers by ours; other methods pass through.

    In a list, a translated method is named as hierarchicalforecast names it (``BottomUp``,
    ``MinTrace_method-mint_shrink``), so the output columns match its output.
    """
    if methods is None:
        return None
    if isinstance(methods, Mapping):
        return {k: _translate(m) if is_hf(m) else m for k, m in methods.items()}
    if not any(is_hf(m) for m in methods):
        return methods
    out = {}
    for m in methods:
        ours = _translate(m) if is_hf(m) else m
        name = hf_name(ours)
        if is_hf(m):  # keep its own class name (MinTraceSparse_method-wls_var), as it does
            name = type(m).__name__ + name[len(type(ours).__name__) :]
        out[name] = ours
    return out


def hf_name(method: Any) -> str:
    """hierarchicalforecast's name of a method (its ``_build_fn_name``)."""
    kind = type(method).__name__
    if isinstance(method, TopDown):
        return f"TopDown_method-{method.method}"
    if isinstance(method, MiddleOut):
        split, top_down = (getattr(method, f.name) for f in fields(method)[:2])
        return f"MiddleOut_middle_level-{split}_top_down_method-{top_down}"
    if isinstance(method, MinTrace):
        name = f"MinTrace_method-{method.method}"
        if method.nonnegative:
            name += "_nonnegative-True"
        if method.method == "mint_shrink" and method.mint_shr_ridge != 2e-8:
            name += f"_mint_shr_ridge-{method.mint_shr_ridge}"
        return name
    return kind


def check_fitted_columns(
    base: Any, Y_df: pd.DataFrame | None, methods: Any, intervals: Any
) -> None:
    """Nixtla inputs: name the model whose fitted values a method needs but ``Y_df`` lacks."""
    if not isinstance(base, pd.DataFrame):
        return
    objs = list(methods.values()) if isinstance(methods, Mapping) else list(methods or [])
    needs = [
        f"MinTrace({m.method!r})"
        for m in objs
        if isinstance(m, MinTrace) and m.method in _RESIDUAL_METHODS
    ]
    if intervals == "bootstrap":
        needs.append("intervals='bootstrap'")
    if not needs:
        return
    cols = set(base.columns) - {"unique_id", "ds", "cutoff"}
    models = [c for c in base.columns if c in cols and "-lo-" not in c and "-hi-" not in c]
    have = set() if Y_df is None else set(Y_df.columns)
    missing = [m for m in models if m not in have]
    if missing:
        raise ReconciliationError(
            f"Y_df lacks fitted values for model {missing[0]!r}"
            + (f" (and {missing[1:]})" if len(missing) > 1 else "")
            + f", which {needs[0]} needs: add a column {missing[0]!r} with the in-sample fitted "
            "values to Y_df (statsforecast: forecast(..., fitted=True) then "
            "forecast_fitted_values()), or use BottomUp, MinTrace('ols') or "
            "MinTrace('wls_struct')."
        )


def wide_hf(forecasts: pd.DataFrame, methods: Mapping[str, Any]) -> pd.DataFrame:
    """Wide frame with hierarchicalforecast's columns: ``<model>``, ``<model>/<Method_params>``.

    Column order as hierarchicalforecast's output: the base columns of every model, then for
    each method and model the point column, the lower bounds (widest first) and upper bounds.
    """
    fc = forecasts
    level = sorted(int(c.rsplit("_", 1)[1]) for c in fc.columns if c.startswith("yhat_lo_"))
    keys = fc[["unique_id", "ds"]].drop_duplicates().reset_index(drop=True)
    out = {"unique_id": keys["unique_id"].to_numpy(), "ds": keys["ds"].to_numpy()}
    index = pd.MultiIndex.from_frame(keys)
    models = list(dict.fromkeys(fc["model"]))
    order = [("base", m) for m in models] + [
        (meth, m) for meth in dict.fromkeys(fc["method"]) if meth != "base" for m in models
    ]
    for method, model in order:
        part = fc[(fc["method"] == method) & (fc["model"] == model)]
        if part.empty:
            continue
        part = part.set_index(["unique_id", "ds"]).reindex(index)
        name = model if method == "base" else f"{model}/{_label(method, methods)}"
        out[name] = part["yhat"].to_numpy()
        for lv in reversed(level):
            out[f"{name}-lo-{lv}"] = part[f"yhat_lo_{lv}"].to_numpy()
        for lv in level:
            out[f"{name}-hi-{lv}"] = part[f"yhat_hi_{lv}"].to_numpy()
    return pd.DataFrame(out)


def _label(method: str, methods: Mapping[str, Any]) -> str:
    obj = methods.get(method)
    if obj is None:
        return method
    name, kind = hf_name(obj), type(obj).__name__
    rest = name[len(kind) :]
    prefix = method[: len(method) - len(rest)] if method.endswith(rest) else None
    if prefix in (kind, kind + "Sparse", "OptimalCombination"):
        return method  # already hierarchicalforecast's name (a translated reconciler)
    return name
