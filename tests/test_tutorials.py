"""Tutorials are executed so they never rot."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, TUTORIALS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_zprime_cross_section_tutorial_runs_and_is_consistent(tmp_path, capsys):
    tutorial = _load("01_zprime_cross_sections")
    out = tmp_path / "zprime.png"
    rows = tutorial.main(["--n", "20000", "--masses", "2000", "3000", "--out", str(out)])
    assert out.stat().st_size > 5_000 and "| 2000 |" in capsys.readouterr().out
    # σ is positive and falls with the Z′ mass (2 → 3 TeV: by a factor ~20), far beyond
    # 5 combined σ (false failure < 6e-7)
    (lo, e_lo), (hi, e_hi) = rows[0]["zprime_only"], rows[1]["zprime_only"]
    assert lo > 0 and hi > 0
    assert lo - hi > 5 * math.hypot(e_lo, e_hi)
