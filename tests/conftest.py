"""Shared fixtures: devices as a test axis, float64 by default, gpu marker handling."""

from __future__ import annotations

import pytest
import torch

_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` when CUDA is not available (CI has no GPU)."""
    if _CUDA:
        return
    skip = pytest.mark.skip(reason="needs CUDA (gpu marker); torch.cuda.is_available() is False")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["cpu"] + (["cuda"] if _CUDA else []))
def device(request) -> torch.device:
    """Every device this machine has: CPU always, CUDA when available."""
    return torch.device(request.param)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator, for reproducible draws."""
    return torch.Generator().manual_seed(20261123)
