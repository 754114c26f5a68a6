"""benchmarks/nis.py: the W + 2 jets path (``--process w-jets --set n_jets=2``) runs and
writes its JSON, with medians over seeds and ratios to madnis 1.0.0 (tiny budget; the
madnis column is skipped when madnis is not installed, a benchmark-only dependency)."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "nis.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_nis", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_process_problem_names_round_trip(bench):
    name = bench.process_problem_name("w-jets", ["n_jets=2", "pt_min=25.5", "charge=minus"])
    assert name == "w-jets(n_jets=2;pt_min=25.5;charge=minus)"
    assert bench._process_spec(name) == (
        "w-jets", {"n_jets": 2, "pt_min": 25.5, "charge": "minus"}
    )
    assert bench.ALIASES["w2j"] == bench.process_problem_name("w-jets", ["n_jets=2"])
    assert bench._process_spec("camel-2d") is None
    with pytest.raises(ValueError, match="--set: expected NAME=VALUE, got 'n_jets'"):
        bench.process_problem_name("w-jets", ["n_jets"])
    with pytest.raises(ValueError, match="unknown setting"):
        bench.physics_problem("w-jets(n_jet=2)")


def test_w2j_benchmark_runs_and_writes_json(bench, tmp_path):
    have_madnis = importlib.util.find_spec("madnis") is not None
    methods = ["multi-channel+flow"] + (["madnis-1.0.0"] if have_madnis else [])
    out = tmp_path / "w2j.json"
    budget, n_eval = 10_000, 2_000  # the flow's half: >= 2 batches of 2048
    bench.main(["--process", "w-jets", "--set", "n_jets=2", "--methods", ",".join(methods),
                "--budget", str(budget), "--n-eval", str(n_eval), "--seeds", "2",
                "--out", str(out)])
    d = json.loads(out.read_text())
    assert d["budget"] == budget and d["n_eval"] == n_eval
    rows, summary = d["rows"], {s["method"]: s for s in d["summary"]}
    assert len(rows) == 2 * len(methods) and set(summary) == set(methods)
    for r in rows:
        assert r["problem"] == "w-jets(n_jets=2)" and r["status"] == "ok", r
        # equal calls: every method spends the budget, up to one batch or round rounding
        assert 0.6 * budget <= r["train_calls"] <= budget, r
        assert r["value"] > 0 and r["error"] > 0 and r["rel_std"] > 0, r
        assert 0 < r["unweighting_efficiency"] <= 1, r
        assert r["pull"] is None and r["reference"] is None  # no reference for W + 2 jets
    for m, s in summary.items():
        mine = [r for r in rows if r["method"] == m]
        for k in ("unweighting_efficiency", "rel_std", "train_s"):
            assert s[k] == statistics.median(r[k] for r in mine)
        if have_madnis:
            base = summary["madnis-1.0.0"]
            for k in ("unweighting_efficiency", "rel_std", "train_s"):
                assert math.isclose(s[f"{k}_vs_madnis"], s[k] / base[k], rel_tol=1e-12)
    assert "eff / madnis" in d["table"] and d["table"].count("w-jets(n_jets=2)") == len(methods)
