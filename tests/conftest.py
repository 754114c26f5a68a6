"""Shared fixtures: devices as a test axis, float64 by default, gpu marker handling.

Plain helper functions that several modules share are in ``_helpers.py``.
"""

from __future__ import annotations

import os

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


@pytest.fixture
def one_thread():
    """Run the test on one torch thread, restoring the thread count afterwards.

    A module opts in for all its tests with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def diphoton():
    """The q q̄ → γγg process (``diphoton-jet``) at its defaults, once per test module."""
    from forward.processes import get_process

    return get_process("diphoton-jet")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (CI=true), a test skipped for a missing module is a failure.

    ``.ci/run`` installs the ``test`` extra, which holds every optional dependency the
    suite uses; a skip for an import there means the extra is incomplete.
    """
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get("CI") or not report.skipped:
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
    if "could not import" in reason:
        report.outcome = "failed"
        report.longrepr = f"CI lacks an optional dependency the test needs: {reason}"
