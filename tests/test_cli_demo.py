"""``invsim demo``: the README's main job writes its report and agrees with Pythia."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from invsim.cli import cli


def test_demo_refuses_to_overwrite_a_report(tmp_path):
    (tmp_path / "summary.md").write_text("a user's earlier report")
    res = CliRunner().invoke(cli, ["demo", "--quick", "-o", str(tmp_path)])
    assert res.exit_code != 0
    assert "--overwrite" in res.output
    assert (tmp_path / "summary.md").read_text() == "a user's earlier report"


@pytest.mark.slow
def test_demo_quick_writes_report_and_matches_pythia(tmp_path):
    out = tmp_path / "report"
    res = CliRunner().invoke(cli, ["demo", "--quick", "-o", str(out), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"summary.md", "results.json", "mll.png"}
    results = json.loads((out / "results.json").read_text())
    # each of the 4 pulls exceeds 5 combined σ with probability 6e-7 for a correct chain
    assert len(results["cross_sections"]) == 4
    for row in results["cross_sections"]:
        assert abs(row["pull"]) < 5, row
    # the torch reader agrees with Pythia's at the demo's points (interpolation schemes
    # differ at the 1e-3 level at worst inside the grid)
    for row in results["pdf"]:
        assert row["xf"] == pytest.approx(row["xf_pythia"], rel=2e-3), row
    assert (out / "mll.png").stat().st_size > 10_000
