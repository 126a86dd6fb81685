"""Reading the user's file and writing a run's outputs, the two places where data crosses the disk.

Reading keeps key columns exactly as written: CSV keys are read as text (``"01"`` stays ``"01"``,
``NA`` is Namibia, not a missing value), Parquet keeps its own dtypes. Writing is a transaction:
every file of a run goes into a temporary folder beside ``out``, which replaces ``out`` only when
everything was written, so an interrupted or failed run leaves the previous output untouched and
nothing that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from htsforecast.errors import DataError
from htsforecast.validation import format_examples

__all__ = ["read_table", "check_output_dir", "output_transaction", "file_sha256", "STAMP"]

#: The file every output folder of ``htsforecast run`` holds; it marks a folder as ours.
STAMP = "run.json"
_PARQUET = (".parquet", ".pq")


def _check_input_path(path: Path) -> None:
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist.")
    if path.is_dir():
        raise DataError(f"data file '{path}' is a directory; give the CSV or Parquet file in it.")
    if not os.access(path, os.R_OK):
        raise DataError(f"data file '{path}' is not readable (permission denied).")


def is_parquet(path: str | Path) -> bool:
    """True for a ``.parquet`` / ``.pq`` file name."""
    return Path(path).suffix.lower() in _PARQUET


def read_table(
    path: str | Path,
    keys: Sequence[str],
    time_col: str,
    target_col: str,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a CSV or Parquet file of bottom-level data, keeping the keys' spelling.

    Parameters
    ----------
    path : str or Path
    keys : sequence of str
        Key columns (read as text from CSV, with no value treated as missing except an empty
        cell).
    time_col, target_col : str
    encoding : str
        Text encoding of a CSV file.

    Raises
    ------
    DataError
        A missing, directory or unreadable file; text that is not in ``encoding``; a missing
        column; target values that are not numbers (naming the file lines).
    """
    path = Path(path)
    _check_input_path(path)
    needed = list(dict.fromkeys([*keys, time_col, target_col]))
    if is_parquet(path):
        df = pd.read_parquet(path)
        _require(df.columns, needed, path)
        return df
    try:
        header = pd.read_csv(path, nrows=0, encoding=encoding).columns
        _require(header, needed, path)
        df = pd.read_csv(
            path,
            dtype={k: str for k in keys} | {time_col: str},
            keep_default_na=False,
            na_values={target_col: sorted(_NA_STRINGS)},
            encoding=encoding,
        )
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file '{path}' is not {encoding} text ({exc.reason} at byte {exc.start}): "
            "re-save it as UTF-8, or pass --encoding (e.g. --encoding latin-1)."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty.") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"data file '{path}' is not a valid CSV file: {exc}") from None
    df[target_col] = _numeric_target(df[target_col], target_col, path)
    return df


_NA_STRINGS = {"", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "#N/A", "-nan"}


def _require(columns: Sequence[str], needed: Sequence[str], path: Path) -> None:
    missing = [c for c in needed if c not in set(columns)]
    if missing:
        raise DataError(
            f"data file '{path}' has no column(s) {format_examples(missing)}; it has "
            f"{format_examples(list(columns), 12)}. Name them with --time-col, --target-col or "
            "the formula."
        )


def _numeric_target(col: pd.Series, name: str, path: Path) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col):
        return col
    num = pd.to_numeric(col, errors="coerce")
    bad = num.isna() & col.notna()
    if bad.any():
        lines = (col.index[bad] + 2).tolist()  # 1-based, after the header line
        values = col[bad].head(3).tolist()
        raise DataError(
            f"target column '{name}' of '{path}' has {int(bad.sum())} value(s) that are not "
            f"numbers, e.g. {format_examples([repr(x) for x in values], 3)} at file line(s) "
            f"{format_examples(lines)}. Fix or remove them (empty cells and NA are missing "
            "values)."
        )
    return num


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (the run stamp records the data file's)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_output_dir(out: str | Path, marker: str = STAMP, option: str = "--out") -> Path:
    """Fail before any work if ``out`` cannot receive a run's output.

    ``out`` may be missing (it is created), an empty folder, or the output folder of an earlier
    run (it holds ``marker``, by default :data:`STAMP`; it is replaced whole). A file, a folder
    holding other files, or a place that cannot be written is an error naming ``option``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{option} '{out}' is a file; give a folder (it is created if missing).")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise DataError(
            f"{option} '{out}' holds files htsforecast did not write (no {marker}); choose a new "
            "or empty folder so that nothing of yours is replaced."
        )
    parent = (out if out.is_dir() else out.parent).resolve()
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DataError(f"{option} '{out}': cannot write in '{probe}' (permission denied).")
    return out


@contextlib.contextmanager
def output_transaction(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out`` whole, on failure it vanishes.

    The temporary folder sits beside ``out`` (same file system, so the final step is a rename).
    A previous output folder is renamed aside, the new one renamed into place, then the old one
    removed: at every moment either the complete old or the complete new output is at ``out``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except BaseException:  # Ctrl-C included: nothing half-written stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
