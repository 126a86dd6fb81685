"""Bundled data sets (no network): real published tables and the simulated radon panel.

>>> from htsforecast.datasets import load_tourism, list_datasets
>>> ds = load_tourism()
>>> ds.formula
'(state / region) * purpose'

Every loader returns a :class:`Dataset` whose ``data`` is bottom-level long data (one column per
key, ``ds``, ``y``) and whose ``formula`` describes the hierarchy, ready for
``Hierarchy.from_formula(ds.formula).aggregate(ds.data, freq=ds.freq)``. The files and their
provenance (origin, licence, citation) are in the repository's ``data/<name>/SOURCE.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from htsforecast.datasets._base import AGGREGATED, Dataset
from htsforecast.datasets._promo import SimulatedPromotions, simulate_promotions
from htsforecast.datasets._radon import load_radon_panel, load_radon_survey
from htsforecast.datasets._tables import (
    load_labour,
    load_prison,
    load_tourism,
    load_tourism_large,
    load_tourism_small,
)
from htsforecast.errors import DataError

__all__ = [
    "AGGREGATED",
    "DATASETS",
    "Dataset",
    "list_datasets",
    "load_dataset",
    "load_labour",
    "load_prison",
    "load_radon_panel",
    "load_radon_survey",
    "load_tourism",
    "load_tourism_large",
    "load_tourism_small",
    "SimulatedPromotions",
    "simulate_promotions",
]

#: Registry of the time-series data sets: name -> loader. ``radon_panel`` is the default.
DATASETS: dict[str, Callable[[], Dataset]] = {
    "radon_panel": load_radon_panel,
    "tourism": load_tourism,
    "prison": load_prison,
    "tourism_large": load_tourism_large,
    "tourism_small": load_tourism_small,
    "labour": load_labour,
}

#: Bundled tables that are not time series (listed by :func:`list_datasets`, not loadable by
#: :func:`load_dataset`): name -> (loader, description).
_TABLES: dict[str, tuple[Callable[[], pd.DataFrame], str]] = {
    "radon_survey": (
        load_radon_survey,
        "REAL EPA State Residential Radon Survey (Gelman & Hill), one row per home, 9 states, "
        "1987-89; the source of radon_panel",
    ),
}

_FREQ_NAMES = {"QS": "quarterly", "MS": "monthly", "D": "daily", "W": "weekly", "YS": "yearly"}


_COLUMNS = [
    "name",
    "frequency",
    "formula",
    "n_bottom",
    "n_nodes",
    "n_periods",
    "rows",
    "description",
]


def load_dataset(name: str) -> Dataset:
    """Load a bundled time-series data set by its registry name (see :data:`DATASETS`).

    Raises
    ------
    DataError
        If ``name`` is not a bundled data set; the message lists the valid names.
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown data set {name!r}. Hint: choose one of {', '.join(DATASETS)} "
            "(`htsforecast datasets` lists them)."
        ) from None
    return loader()


def _n_nodes(dataset: Dataset) -> int:
    """Number of hierarchy nodes: aggregate one dummy period of the distinct key combinations
    (only combinations that occur become nodes, so this equals the full aggregation's count)."""
    from htsforecast.hierarchy import Hierarchy

    cells = dataset.data[dataset.key_columns].drop_duplicates()
    cells = cells.assign(ds=dataset.data["ds"].min(), y=0.0)
    hier = Hierarchy.from_formula(dataset.formula)
    hier.aggregate(cells, time_col="ds", target_col="y", freq=dataset.freq)
    return int(hier.n_nodes)


def list_datasets() -> pd.DataFrame:
    """Table of the bundled time-series data sets with their shapes.

    Returns
    -------
    pandas.DataFrame
        One row per data set (registry order, then the cross-sectional tables) with columns
        ``name``, ``frequency``, ``formula``, ``n_bottom`` (bottom series), ``n_nodes`` (all
        series of the hierarchy), ``n_periods``, ``rows`` (rows of the bottom-level long data)
        and ``description``. The counts are nullable integers, ``<NA>`` for a table that is not
        a time series (``radon_survey``: ``frequency`` is ``"cross-sectional"``).
    """
    records: list[dict[str, object]] = []
    for name, loader in DATASETS.items():
        ds = loader()
        records.append(
            {
                "name": name,
                "frequency": _FREQ_NAMES.get(ds.freq, ds.freq),
                "formula": ds.formula,
                "n_bottom": ds.n_bottom,
                "n_nodes": _n_nodes(ds),
                "n_periods": ds.n_periods,
                "rows": len(ds.data),
                "description": ds.description,
            }
        )
    for name, (loader, description) in _TABLES.items():
        records.append(
            {
                "name": name,
                "frequency": "cross-sectional",
                "formula": "",
                "rows": len(loader()),
                "description": description,
            }
        )
    table = pd.DataFrame.from_records(records, columns=_COLUMNS)
    counts = ["n_bottom", "n_nodes", "n_periods", "rows"]
    table[counts] = table[counts].astype("Int64")
    return table
