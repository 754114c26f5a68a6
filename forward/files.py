"""Safe file writing shared by every writer: no silent overwrite, no half-written file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_target", "check_target"]


def check_target(path: Path, overwrite: bool) -> None:
    """Raise ``FileExistsError`` if ``path`` exists and ``overwrite`` is false."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"path: {str(path)!r} exists; pass overwrite=True to replace it")


@contextmanager
def atomic_target(path: Path, overwrite: bool, suffix: str = "") -> Iterator[Path]:
    """Write to a temporary file beside ``path`` and move it into place on success.

    The target is checked before writing starts and again just before the move (another
    process may have created it meanwhile); the temporary file is removed on any error.

    Args:
        path: the final file.
        overwrite: allow replacing an existing ``path``.
        suffix: suffix of the temporary name, for writers that infer the format from it.

    Yields:
        The temporary path to write.
    """
    check_target(path, overwrite)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        check_target(path, overwrite)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
