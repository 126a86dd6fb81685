"""One registry of the reconciliation methods that the CLI, the config and the errors name.

darts keeps its reconcilers as one list plus a branch each; here the list is :func:`methods`:
the fixed methods below plus one MinTrace entry per covariance estimator of
:data:`~htsforecast.reconciliation._covariance.COVARIANCES`. So a new covariance estimator is an
entry in that table (its function and its test), and a new method is one entry in ``_FIXED``
(a linear one builds its :class:`~htsforecast.reconciliation._methods.Fitted` with
``Fitted.from_projection(P, W, S=...)`` and gets points, samples and variances).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from htsforecast.errors import DataError
from htsforecast.reconciliation._covariance import COVARIANCES
from htsforecast.reconciliation._methods import BottomUp, MinTrace, TopDown

__all__ = ["MethodSpec", "methods", "method_names", "default_methods", "build_methods"]


@dataclass(frozen=True)
class MethodSpec:
    """How a named method is built: ``build(nonnegative)`` returns the method object."""

    build: Callable[[bool], Any]
    doc: str
    default: bool = True


_FIXED: dict[str, MethodSpec] = {
    "bu": MethodSpec(lambda nn: BottomUp(nonnegative=nn), "BottomUp()"),
    "td_ahp": MethodSpec(
        lambda nn: TopDown("average_proportions", nonnegative=nn),
        "TopDown('average_proportions')",
    ),
    "td_pha": MethodSpec(
        lambda nn: TopDown("proportion_averages", nonnegative=nn),
        "TopDown('proportion_averages')",
    ),
    "td_fp": MethodSpec(
        lambda nn: TopDown("forecast_proportions", nonnegative=nn),
        "TopDown('forecast_proportions')",
    ),
}
#: Estimators left out of the default run (``mint_cov`` is singular whenever there are fewer
#: residual periods than aggregates, and then falls back to ``mint_shrink`` anyway).
_NOT_DEFAULT = {"mint_cov"}


def _mint(name: str, nonnegative: bool) -> MinTrace:
    return MinTrace(name, nonnegative=nonnegative)


def methods() -> dict[str, MethodSpec]:
    """Every named method: the fixed ones, then ``MinTrace(<estimator>)`` per estimator."""
    out = dict(_FIXED)
    for name, est in COVARIANCES.items():
        out[name] = MethodSpec(
            partial(_mint, name),
            f"MinTrace('{name}'): {est.doc}",
            default=name not in _NOT_DEFAULT,
        )
    return out


def method_names() -> list[str]:
    """The names accepted by ``--methods`` / ``methods = [...]`` in a config."""
    return list(methods())


def default_methods() -> tuple[str, ...]:
    """The methods of a run that names none."""
    return tuple(name for name, spec in methods().items() if spec.default)


def build_methods(names: tuple[str, ...], nonnegative: bool = False) -> dict[str, Any]:
    """The method objects for ``names`` (``nonnegative`` applies to every method)."""
    known = methods()
    if not names:
        raise DataError(f"no methods given; choose from {', '.join(known)}.")
    bad = [n for n in names if n not in known]
    if bad:
        raise DataError(f"unknown method(s) {bad}; choose from {', '.join(known)}.")
    return {name: known[name].build(nonnegative) for name in names}
