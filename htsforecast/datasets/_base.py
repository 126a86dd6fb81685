"""The :class:`Dataset` value object and the lookup of bundled data files.

The repository's ``data/`` folder is installed as the package ``htsforecast._data`` (see
``package-dir`` in ``pyproject.toml``; the folder has no ``__init__.py``, so it is a namespace
package located with ``importlib.util.find_spec``). In a source checkout or an editable install
that package may not be importable, so :func:`_data_path` falls back to ``<repo>/data``.
Nothing here ever reads outside the package or the checkout (no network, no shared folders).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from htsforecast.errors import DataError

__all__ = ["AGGREGATED", "Dataset"]

#: Marker for an aggregated key in key tables (same convention as ``Hierarchy.keys``).
AGGREGATED = "<aggregated>"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A bundled data set: bottom-level long data plus the formula of its hierarchy.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"tourism"``.
    data : pandas.DataFrame
        Bottom-level long data, shape ``(n_bottom * n_periods, n_keys + 2)``: one column per key
        (str), then ``ds`` (datetime64[ns], period start) and ``y`` (float64). Sorted by keys,
        then ``ds``.
    formula : str
        Hierarchy formula in htsforecast's grammar (``/`` nests, ``*`` crosses, parentheses
        group; fable's ``aggregate_key``), e.g. ``"(state / region) * purpose"``.
    freq : str
        pandas offset alias of ``ds`` (``"QS"``, ``"MS"``).
    season_length : int
        Periods per seasonal cycle (4 for quarterly, 12 for monthly).
    description : str
        One line: what is measured, where, when, and the unit.
    S_ref : pandas.DataFrame or None
        Aggregation (summing) matrix shipped with the data, shape ``(n_nodes, n_bottom)``, with
        the shipped labels: index = node label, columns = bottom label. ``None`` when the source
        ships none.
    ref_keys : pandas.DataFrame or None
        Maps every shipped label (rows and columns of ``S_ref``) to htsforecast key values:
        index = shipped label, one column per key column, :data:`AGGREGATED` where a key is
        summed over (the convention of ``Hierarchy.keys``).

    Notes
    -----
    Equality and hashing are by identity (``eq=False``): frames have no scalar truth value.
    """

    name: str
    data: pd.DataFrame = field(repr=False)
    formula: str
    freq: str
    season_length: int
    description: str = field(repr=False)
    S_ref: pd.DataFrame | None = field(default=None, repr=False)
    ref_keys: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def key_columns(self) -> list[str]:
        """Key columns of :attr:`data`, in column order (every column but ``ds`` and ``y``)."""
        return [c for c in self.data.columns if c not in ("ds", "y")]

    @property
    def n_bottom(self) -> int:
        """Number of bottom-level series (distinct key combinations)."""
        return len(self.data[self.key_columns].drop_duplicates())

    @property
    def n_periods(self) -> int:
        """Number of distinct time stamps."""
        return int(self.data["ds"].nunique())

    def hierarchy(self):
        """Return ``(hier, Y)``: the :class:`~htsforecast.Hierarchy` of :attr:`formula` and the
        long frame ``unique_id, ds, y`` of every node, aggregated from :attr:`data`."""
        from htsforecast.hierarchy import Hierarchy

        hier = Hierarchy.from_formula(self.formula)
        Y = hier.aggregate(self.data, time_col="ds", target_col="y", freq=self.freq)
        return hier, Y


def _data_path(*parts: str) -> Path:
    """Path of a bundled data file, e.g. ``_data_path("tourism", "tourism.csv")``.

    Looks in the installed package ``htsforecast._data`` first, then in ``<repo>/data`` (a
    source checkout or an editable install, where ``htsforecast._data`` may not be importable).

    Raises
    ------
    DataError
        If the file is in neither place (a broken install).
    """
    try:  # the directories of the (namespace) package, whatever the install layout
        spec = importlib.util.find_spec("htsforecast._data")
    except ModuleNotFoundError:
        spec = None
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    candidates = [Path(root).joinpath(*parts) for root in roots]
    candidates.append(Path(__file__).resolve().parents[2].joinpath("data", *parts))
    for path in candidates:
        if path.is_file():
            return path
    where = " or ".join(str(p) for p in candidates)
    raise DataError(
        f"bundled data file {'/'.join(parts)!r} not found (looked in {where}). "
        "Hint: reinstall htsforecast; the data files ship with the package."
    )
