"""Helpers that several test modules share; fixtures are in ``conftest.py``.

pytest puts ``tests/`` on ``sys.path`` (the folder is not a package), so a test module
imports them as ``from _helpers import ...``.
"""

from __future__ import annotations

import pytest
import torch


def seeded(seed: int) -> torch.Generator:
    """A new CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def save_refusing_overwrite(obj, path) -> None:
    """``obj.save(path)``, and check that saving again to the same path raises
    ``FileExistsError``."""
    obj.save(path)
    with pytest.raises(FileExistsError):
        obj.save(path)
