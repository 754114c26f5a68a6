"""Speed of the inverse chain: ``invsim train`` at the quick size, and the ML-MEM
likelihood per event per θ.

1. **Training**: :func:`invsim.mem.recipe.build_model` for Drell–Yan μ⁺μ⁻ (1500 <
   m_ℓℓ < 2500 GeV) through the card detector ``cms`` over mzp = 1800–2300 GeV at the
   sizes of ``invsim train --quick`` (wall seconds; the issue's bar is 5 minutes on the
   2-core CPU).
2. **Likelihood**: 1000 reco events, 1000 importance samples each, log p at one θ
   (the median of ``--repeats`` calls after one warm-up call), as ms per event per θ;
   also the one-off cost of drawing the samples; the median over ``--rounds`` fresh
   processes. With ``--baseline PATH`` the same
   measurement runs, in the same process order, on another checkout of invsim (e.g. the
   commit before a change: ``git worktree add /tmp/base <commit>``) through
   :func:`build_dilepton_model` and :class:`MEMLikelihood`, which both versions have;
   the table then shows the ratio.

    OMP_NUM_THREADS=1 python3 benchmarks/inverse_chain.py --baseline /tmp/base

Prints a table and writes ``benchmarks/results/inverse_chain.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

__all__ = ["main", "time_likelihood"]

_LIKELIHOOD = r'''
import json, statistics, sys, time, warnings
warnings.simplefilter("ignore")
import torch
torch.set_num_threads(int(sys.argv[2]))
from forward.processes import get_process
from invsim.mem import MEMLikelihood
from invsim.mem.recipe import build_dilepton_model
try:
    from forward.detector import GaussianLeptonDetector
    from invsim.pairs import simulate
except ImportError:  # invsim 0.1 layout
    from invsim.bruteforce import GaussianLeptonDetector, simulate
n_events, n_samples, repeats = 1000, 1000, int(sys.argv[1])
process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0)
det = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
model, _ = build_dilepton_model(process, det, n_trials=60_000, epochs=1, seed=0)
sim = simulate(process, det, 20_000, {"mzp": 2030.0}, seed=5)
x = sim.x_reco[sim.passed][:n_events]
t0 = time.perf_counter()
lik = MEMLikelihood(model, x, n_samples=n_samples, parameter_names=["mzp"], seed=1,
                    n_fiducial=100_000, on_flagged="ignore")
t_draw = time.perf_counter() - t0
theta = {"mzp": torch.tensor(2030.0, dtype=torch.float64)}
with torch.no_grad():
    lik.log_prob(theta)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        lik.log_prob(theta)
        times.append(time.perf_counter() - t0)
print(json.dumps({"ms_per_event_per_theta": 1e3 * statistics.median(times) / len(x),
                  "seconds_drawing": t_draw, "n_events": len(x), "n_samples": n_samples}))
'''


def time_likelihood(checkout: str, repeats: int, threads: int) -> dict:
    """Run the likelihood timing in a fresh interpreter on the checkout at ``checkout``."""
    env = {**os.environ, "PYTHONPATH": checkout, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, "-c", _LIKELIHOOD, str(repeats), str(threads)],
                          capture_output=True, text=True, env=env, cwd=checkout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"likelihood timing failed on {checkout}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_training(threads: int) -> dict:
    """``invsim train --quick`` sizes for Drell–Yan through the card detector."""
    import torch

    from forward.detector import Detector
    from forward.processes import get_process
    from invsim.cli.train import PRESETS
    from invsim.mem.recipe import build_model

    torch.set_num_threads(threads)
    trials, epochs = PRESETS["quick"]
    process = get_process("drell-yan", leptons="mumu", mll_min=1500.0, mll_max=2500.0)
    t0 = time.perf_counter()
    _, info = build_model(process, Detector("cms"), n_trials=trials, epochs=epochs, seed=0,
                          ranges={"mzp": (1800.0, 2300.0)}, min_accepted=0)
    return {"seconds": time.perf_counter() - t0, "trials": trials, "epochs": epochs,
            "accepted": info["train_accepted"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=None, help="another invsim checkout to compare")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5,
                    help="fresh processes per checkout, alternating (this VM's timings vary "
                         "by up to ±30 %% between identical runs); the median is reported")
    ap.add_argument("--out", default="benchmarks/results/inverse_chain.json")
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args(argv)
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = {"threads": threads, "likelihood": {}, "rounds": {}}
    for _ in range(args.rounds):
        for label, path in (("this", here), ("baseline", args.baseline)):
            if path:
                out["rounds"].setdefault(label, []).append(
                    time_likelihood(path, args.repeats, threads))
    for label, rows in out["rounds"].items():
        out["likelihood"][label] = {
            "ms_per_event_per_theta": statistics.median(
                r["ms_per_event_per_theta"] for r in rows),
            "seconds_drawing": statistics.median(r["seconds_drawing"] for r in rows),
            "all_ms_per_event_per_theta": [r["ms_per_event_per_theta"] for r in rows]}
    if not args.skip_training:
        out["training"] = time_training(threads)
    rows = [("likelihood, ms per event per θ (1000 events x 1000 samples)", "this")]
    print("| measurement | this | baseline | ratio |\n|---|---|---|---|")
    this = out["likelihood"]["this"]["ms_per_event_per_theta"]
    base = out["likelihood"].get("baseline", {}).get("ms_per_event_per_theta")
    print(f"| {rows[0][0]} | {this:.4f} | {base if base is None else f'{base:.4f}'} | "
          f"{'' if base is None else f'{this / base:.2f}'} |")
    if "training" in out:
        t = out["training"]
        print(f"| invsim train --quick, DY through cms ({t['trials']} trials, {t['epochs']} "
              f"epochs), s | {t['seconds']:.1f} | | |")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
