"""Progress bars for long fits (tqdm), on only where somebody is watching.

``progress=None`` (the default everywhere) means "on when standard error is a terminal", so CI logs
and redirected output stay clean; ``True`` / ``False`` force it.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_enabled", "progress_bar"]


def progress_enabled(progress: bool | None) -> bool:
    """Resolve a ``progress`` argument: ``None`` means "stderr is a TTY"."""
    if progress is None:
        stream = sys.stderr
        return bool(getattr(stream, "isatty", None) and stream.isatty())
    return bool(progress)


class _NoBar:
    """Stand-in for a disabled bar (avoids importing tqdm at all)."""

    def update(self, n: int = 1) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """Return a tqdm bar counting ``total`` series, or a no-op stand-in when disabled."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="series", leave=False, dynamic_ncols=True)
