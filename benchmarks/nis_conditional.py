"""θ-conditional NIS on Drell–Yan γ*/Z/Z′ → ℓℓ over the Z′ mass range 1–3 TeV.

Set-up (chosen once for all masses): 13 TeV, e⁺e⁻ + μ⁺μ⁻, full interference, a fixed
wide window 800 < m_ℓℓ < 3400 GeV, and the process's power-law (ŝ^-2) phase-space
channel, so the hypercube does not depend on the Z′ mass and the flow has to find the
moving resonance (width 30–95 GeV) itself; the Z′ couplings keep Pythia's defaults.

For every mass in 1, 1.5, 2, 2.5, 3 TeV the table compares

* ``cond``: one :class:`forward.nis.conditional.ConditionalNIS` trained once over
  ``mzp`` in [1000, 3000] GeV, evaluated at that mass;
* ``single``: :func:`forward.nis.fit` (default pipeline) trained at that mass alone;
* ``vegas``: a VEGAS grid adapted at that mass (10 rounds), the direct reference;

by σ ± error (pb), relative weight std, and the pulls of ``cond`` against ``vegas``
and ``single``. Pass criteria: rel. std(cond) ≤ 1.5 × rel. std(single) and
|pull| < 4 against VEGAS at every mass.

    OMP_NUM_THREADS=1 python3 benchmarks/nis_conditional.py
    OMP_NUM_THREADS=1 python3 benchmarks/nis_conditional.py --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from forward.integrand import HadronicIntegrand
from forward.nis import NISConfig, VegasMap, fit, integrate, vegas_bins
from forward.nis.conditional import ConditionalNIS
from forward.phasespace import PowerLawSampling
from forward.processes.drell_yan import DrellYan

__all__ = ["MASSES", "dy_integrand", "main"]

MASSES = (1000.0, 1500.0, 2000.0, 2500.0, 3000.0)


def dy_integrand() -> HadronicIntegrand:
    """Drell–Yan in 800 < m_ℓℓ < 3400 GeV on the power-law channel (4 dimensions)."""
    proc = DrellYan(leptons="both", mll_min=800.0, mll_max=3400.0, mode="full")
    maps = proc.phase_space()
    channel = next(
        i for i, m in enumerate(maps) if isinstance(m.s_sampling, PowerLawSampling)
    )
    return HadronicIntegrand(proc, channel=channel)


def _at(f: HadronicIntegrand, mass: float):
    p = {"mzp": torch.tensor(mass, dtype=torch.float64)}
    return lambda r: f(r, {k: v.expand(r.shape[0]) for k, v in p.items()})


def main(argv=None) -> dict:
    """Command-line entry point; returns the result dictionary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small budgets (smoke run)")
    ap.add_argument("--calls-cond", type=int, default=None, help="default 800k")
    ap.add_argument("--calls-single", type=int, default=None, help="default 200k per mass")
    ap.add_argument("--n-eval", type=int, default=None, help="default 50k per estimate")
    ap.add_argument("--vegas-calls", type=int, default=None, help="default 200k per mass")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/nis_conditional.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    calls_cond = args.calls_cond or (200_000 if args.quick else 800_000)
    calls_single = args.calls_single or (50_000 if args.quick else 200_000)
    n_eval = args.n_eval or (20_000 if args.quick else 50_000)
    vegas_calls = args.vegas_calls or (100_000 if args.quick else 200_000)
    f = dy_integrand()
    g = torch.Generator().manual_seed(args.seed)
    cfg = NISConfig(calls=calls_cond, hidden=(64, 64))
    cond = ConditionalNIS.fit(f, {"mzp": (1000.0, 3000.0)}, config=cfg, generator=g)
    print(f"conditional: {cond.n_eval} calls, {cond.seconds:.1f} s", flush=True)
    rows = []
    for i, mass in enumerate(MASSES):
        fm = _at(f, mass)
        rc = cond.integrate({"mzp": mass}, n_eval, seed=1000 + i)
        t = time.perf_counter()
        single = fit(fm, 4, NISConfig(calls=calls_single), generator=g)
        t_single = time.perf_counter() - t
        rs = integrate(fm, single.proposal, n_eval, generator=g)
        vm = VegasMap(4, bins=vegas_bins(4, vegas_calls // 10))
        vm.adapt(fm, 10, vegas_calls // 10, generator=g)
        rv = integrate(fm, vm, 2 * n_eval, generator=g, check=False)
        row = {
            "mzp": mass,
            "cond": [rc.value, rc.error, rc.rel_std],
            "single": [rs.value, rs.error, rs.rel_std],
            "vegas": [rv.value, rv.error, rv.rel_std],
            "std_ratio": rc.rel_std / rs.rel_std,
            "pull_vs_vegas": (rc.value - rv.value) / math.hypot(rc.error, rv.error),
            "pull_vs_single": (rc.value - rs.value) / math.hypot(rc.error, rs.error),
            "single_train_s": t_single,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    head = (
        "| m_Z′ [GeV] | σ cond [pb] | σ single [pb] | σ VEGAS [pb] | rel. std cond "
        "| rel. std single | ratio | pull cond−VEGAS | pull cond−single |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        c, s, v = r["cond"], r["single"], r["vegas"]
        lines.append(
            f"| {r['mzp']:.0f} | {c[0]:.6g} ± {c[1]:.2g} | {s[0]:.6g} ± {s[1]:.2g} "
            f"| {v[0]:.6g} ± {v[1]:.2g} | {c[2]:.3f} | {s[2]:.3f} | {r['std_ratio']:.2f} "
            f"| {r['pull_vs_vegas']:+.2f} | {r['pull_vs_single']:+.2f} |"
        )
    table = "\n".join(lines)
    ok = all(r["std_ratio"] <= 1.5 and abs(r["pull_vs_vegas"]) < 4 for r in rows)
    print(table)
    print(f"conditional: {cond.n_eval} training calls in {cond.seconds:.1f} s; "
          f"single: {calls_single} calls per mass; criteria met: {ok}")
    out = {
        "calls_cond": calls_cond, "calls_single": calls_single, "n_eval": n_eval,
        "vegas_calls": vegas_calls,
        "threads": args.threads, "cond_train_s": cond.seconds, "rows": rows, "table": table,
        "criteria_met": ok,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
