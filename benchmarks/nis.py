"""Benchmark of forward.nis on toy integrands at equal integrand calls.

Methods: torch VEGAS (``forward.nis.VegasMap``, 20 rounds, bins as
in ``vegas`` 6.4.1: ``vegas_bins(dims, calls, calls_per_bin=10, max_bins=1000)``), ``flow``
(:func:`forward.nis.fit` without VEGAS: a spline flow with a uniform defensive
component), ``vegas+flow`` (:func:`forward.nis.fit` with its defaults, the default
pipeline: VEGAS warm start on 20 % of the calls, then a flow on the cube with the
VEGAS grid as annealed defensive component), the ``vegas`` package 6.4.1 (its
adaptive map alone, so that all methods are compared as importance-sampling
densities), and ``madnis`` 1.0.0 driven with its defaults (``madnis-1.0.0``) and
after its VEGAS pre-training (``madnis-1.0.0+vegas``, 20 % of the calls).

Every method gets the same training budget of integrand calls; it is then evaluated
on fresh samples: relative weight std, unweighting efficiency at 0.1 % overweight,
integral ± error and pull to the exact value (all toys are normalised: camel and
ring to 1, the signed two-Gaussian toy to 0).

Physics rows (``--problems dy-zprime,ttbar-dilepton``): Drell–Yan γ*/Z/Z′ → ee + μμ
with 50 < m_ℓℓ < 3000 GeV and a 2 TeV Z′, and tt̄ → dilepton (e) with Breit–Wigner
tops and W's (16 dimensions). The single-channel methods integrate the hadronic
integrand on one map's cube: the s⁻² continuum map for Drell–Yan (the only single
map that sees both the Z and the Z′ region) and the narrow-width decay map for tt̄;
``multi-channel`` (:func:`forward.nis.fit_multichannel`: every map of
``process.phase_space()``, learned channel weights, per-channel VEGAS) and
``multi-channel+flow`` (half of the calls for one flow per channel, each fitted on its
channel's adapted VEGAS grid with ``vegas_layer=True``) use all maps.
References: Pythia 8.317's σ(tt̄) × BR(e e) = 489.44/81 pb for tt̄ (on-shell
reference, exact in our narrow-width normalisation) and a 4M-call VEGAS run of our
own integrand on the continuum map for Drell–Yan (no Pythia number for this window);
their errors enter the pulls.

    OMP_NUM_THREADS=1 python3 benchmarks/nis.py --problems dy-zprime,ttbar-dilepton \\
        --methods vegas-torch,flow,vegas+flow,multi-channel,vegas-6.4.1,madnis-1.0.0 \\
        --budget 1000000 --seeds 3 --out benchmarks/results/nis_physics.json

W + 2 jets (issue 16 item 5; ``--problems w2j``, or any registered process with
``--process w-jets --set n_jets=2``): W⁺ → e⁺ ν + 2 jets at 13 TeV (the ``w-jets``
defaults: one-quark-line channels, p_T > 20 GeV, |η| < 4.5, ΔR > 0.4, m_ℓν > 10 GeV)
on its one phase-space map (the W Breit–Wigner decay chain, 10 dimensions; about 13 %
of its uniform points pass the cuts). Preset: 100 000 training calls, 50 000
evaluation points, the methods multi-channel (VEGAS on the map), multi-channel+flow
(half of the calls for a flow fitted on the map's adapted grid, ``vegas_layer=True``),
vegas 6.4.1 and madnis 1.0.0 with and without its VEGAS pre-training; no reference (no
pulls). The summary adds the ratios of unweighting efficiency, weight spread and
training time to ``madnis-1.0.0`` (``*_vs_madnis`` in the JSON, the last three table
columns):

    OMP_NUM_THREADS=1 nice python3 benchmarks/nis.py --process w-jets --set n_jets=2 \
        --seeds 3 --out benchmarks/results/nis_w2j.json

    OMP_NUM_THREADS=1 python3 benchmarks/nis.py --quick --seeds 3
    OMP_NUM_THREADS=1 python3 benchmarks/nis.py --seeds 3 --out a.json
    python3 benchmarks/nis.py --merge a.json b.json --out benchmarks/results/nis.json

(``--merge`` re-summarises rows of runs made in parallel, e.g. one per core;
``--problems dy,ttbar`` are short for the two physics rows.) Torch's optimizer and a
flow are run once before anything is timed (:func:`warm_up`), so the lazy
``torch.optim`` import is not charged to the first method.

``pip install vegas==6.4.1 madnis==1.0.0`` is needed for those columns (bench extras only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

import torch

from forward.nis import (
    MultiChannelConfig,
    NISConfig,
    VegasMap,
    fit,
    fit_multichannel,
    hadronic_channels,
    integrate,
    vegas_bins,
)
from forward.nis.toys import camel, ring, signed_camel

__all__ = ["main", "run_one", "warm_up"]

PROBLEMS = {
    "camel-2d": (lambda: camel(2), 2, 1.0),
    "camel-4d": (lambda: camel(4), 4, 1.0),
    "camel-8d": (lambda: camel(8), 8, 1.0),
    "ring-2d": (lambda: ring(), 2, 1.0),
    "signed-2d": (lambda: signed_camel(2), 2, 0.0),
}
METHODS = (
    "vegas-torch", "flow", "vegas+flow", "multi-channel", "multi-channel+flow", "vegas-6.4.1",
    "madnis-1.0.0", "madnis-1.0.0+vegas",
)
PHYSICS = ("dy-zprime", "ttbar-dilepton")
W2J = "w-jets(n_jets=2)"
W2J_METHODS = (
    "multi-channel", "multi-channel+flow", "vegas-6.4.1", "madnis-1.0.0", "madnis-1.0.0+vegas",
)
W2J_BUDGET = (100_000, 50_000)  # (training calls, evaluation points) of the w2j preset
ALIASES = {"dy": "dy-zprime", "ttbar": "ttbar-dilepton", "w2j": W2J}
_PHYSICS_CACHE: dict = {}


def process_problem_name(process: str, assignments: list[str]) -> str:
    """The problem name of ``--process PROCESS --set NAME=VALUE ...``: ``PROCESS(NAME=VALUE;...)``.

    Raises:
        ValueError: an assignment without ``=``.
    """
    for a in assignments:
        if "=" not in a or not a.partition("=")[0].strip():
            raise ValueError(f"--set: expected NAME=VALUE, got {a!r}")
    return f"{process}({';'.join(a.strip() for a in assignments)})"


def _process_spec(name: str):
    """``(process, settings)`` of a ``PROCESS(NAME=VALUE;...)`` problem name, else None."""
    from invsim.cli._common import parse_value

    if not (name.endswith(")") and "(" in name):
        return None
    pname, _, inner = name[:-1].partition("(")
    settings = {}
    for item in filter(None, inner.split(";")):
        k, _, v = item.partition("=")
        settings[k.strip()] = parse_value(v)
    return pname, settings


def physics_problem(name: str) -> dict:
    """A physics problem: cube integrand ``f`` (dims), target and maps, reference ± error.

    Built once per process (the Drell–Yan reference is a 4M-call VEGAS run). ``name``
    is ``dy-zprime``, ``ttbar-dilepton`` or ``PROCESS(NAME=VALUE;...)`` (any registered
    process with those settings, e.g. ``w-jets(n_jets=2)``, integrated on its maps without
    a reference: value and error NaN, no pulls).
    """
    if name in _PHYSICS_CACHE:
        return _PHYSICS_CACHE[name]
    from forward.integrand import HadronicIntegrand
    from forward.processes import get_process
    from forward.references import PYTHIA_REFERENCES
    from forward.xsec import cross_section

    if name == "dy-zprime":
        proc = get_process("drell-yan", mll_min=50.0, mll_max=3000.0)
        channel = 1  # the s^-2 continuum map (maps: Z' Breit-Wigner, continuum, Z)
        ref = cross_section(proc, 4_000_000, channel=channel, method="vegas", seed=12345)
        value, error = ref.value, ref.error
    elif name == "ttbar-dilepton":
        proc = get_process("ttbar", decays="dilepton")
        channel = 0
        r = PYTHIA_REFERENCES["ttbar"]
        value, error = r.sigma_pb / 81.0, r.error_pb / 81.0  # BR(W -> e nu)^2 = 1/81
    elif _process_spec(name) is not None:
        pname, settings = _process_spec(name)
        proc = get_process(pname, **settings)
        channel = 0
        value, error = math.nan, math.nan  # no reference: the pull column is left empty
    else:
        raise ValueError(
            f"problem: expected one of {PHYSICS}, {list(PROBLEMS)} or 'PROCESS(NAME=VALUE;...)' "
            f"(--process), got {name!r}"
        )
    integrand = HadronicIntegrand(proc, channel=channel)
    target, maps = hadronic_channels(integrand)

    def f(r: torch.Tensor) -> torch.Tensor:
        return integrand(r.to(torch.float64))

    out = {"f": f, "dims": integrand.dim, "target": target, "maps": maps, "ref": value,
           "ref_error": error}
    _PHYSICS_CACHE[name] = out
    return out


def _vegas_package(f, dims, budget, n_eval, seed):
    import numpy as np
    import vegas

    np.random.seed(seed)  # noqa: NPY002 (vegas draws from numpy's global generator)
    integ = vegas.Integrator(dims * [[0.0, 1.0]])
    nitn = 20
    t = time.perf_counter()

    @vegas.lbatchintegrand
    def fv(x):
        return f(torch.as_tensor(x)).numpy()

    integ(fv, nitn=nitn, neval=budget // nitn)
    train_s = time.perf_counter() - t
    y = np.random.default_rng(seed + 1000).random((n_eval, dims))
    x = np.empty_like(y)
    jac = np.empty(n_eval)
    integ.map.map(y, x, jac)
    w = torch.as_tensor(fv(x) * jac)
    return w, budget, train_s


def _madnis(f, dims, budget, n_eval, seed, pretrain):
    """madnis 1.0.0 with its default flow and training settings (Adam, lr 1e-3, batch 1024)."""
    import numpy as np
    from madnis.integrator import Integrator, VegasPreTraining

    torch.manual_seed(seed)
    integ = Integrator(lambda x: f(x).to(x.dtype), dims=dims)
    t = time.perf_counter()
    calls = 0
    if pretrain:
        pre = VegasPreTraining(integ)
        pre.rng = np.random.default_rng(seed)
        n_iter = 10
        per_iter = budget // 5 // n_iter
        pre.train([per_iter] * n_iter)
        pre.initialize_integrator()
        calls += per_iter * n_iter
    steps = (budget - calls) // integ.batch_size
    integ.train(steps)
    calls += steps * integ.batch_size
    train_s = time.perf_counter() - t
    with torch.no_grad():
        s = integ.sample(n_eval)
    w = f(s.x.to(torch.float64)) / s.q_sample.to(torch.float64)
    return w, calls, train_s


def _weights(f, proposal, n, seed):
    r = integrate(f, proposal, n, generator=torch.Generator().manual_seed(seed + 7919), check=False)
    return r


def _result(w: torch.Tensor):
    from forward.nis import IntegrationResult, unweighting_efficiency

    n = w.numel()
    mean_abs = float(w.abs().mean())
    return IntegrationResult(
        value=float(w.mean()),
        error=float(w.std()) / math.sqrt(n),
        n_eval=n,
        rel_std=float(w.std()) / mean_abs,
        unweighting_efficiency=unweighting_efficiency(w, 1e-3),
    )


def sampling_rate(proposal, generator, n: int = 100_000, repeats: int = 5) -> float:
    """Events per second of ``proposal.sample(n)`` (points and densities), best of ``repeats``
    (CUDA work is synchronised before the clock stops)."""
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        x, _ = proposal.sample(n, generator=generator)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        ts.append(time.perf_counter() - t0)
    return n / min(ts)


def warm_up() -> None:
    """Import and run torch's optimizer, autograd and zuko once, so that their one-time
    start-up cost (the lazy ``torch.optim`` import, first kernels) is not charged to the
    first method timed."""
    from forward.nis.flows import CubeFlow

    flow = CubeFlow(2)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    x = torch.rand(64, 2)
    loss = -flow.log_prob(x).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()


def run_one(problem: str, method: str, seed: int, budget: int, n_eval: int) -> dict:
    """Train one method on one problem with ``budget`` calls and evaluate on ``n_eval``."""
    ref_err = 0.0
    phys = None
    if problem in PHYSICS or _process_spec(problem) is not None:
        phys = physics_problem(problem)
        f, dims, exact, ref_err = phys["f"], phys["dims"], phys["ref"], phys["ref_error"]
    else:
        make, dims, exact = PROBLEMS[problem]
        f = make()
    row = {"problem": problem, "method": method, "seed": seed}
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    t = time.perf_counter()
    if method in ("vegas-6.4.1", "madnis-1.0.0", "madnis-1.0.0+vegas"):
        try:
            if method == "vegas-6.4.1":
                w, calls, train_s = _vegas_package(f, dims, budget, n_eval, seed)
            else:
                w, calls, train_s = _madnis(f, dims, budget, n_eval, seed, "vegas" in method)
        except ImportError as e:
            row["status"] = f"not installed ({e.name})"
            return row
        res = _result(w)
    elif method.startswith("multi-channel"):
        if phys is None:
            row["status"] = "n/a (one channel)"
            return row
        cfg = MultiChannelConfig(
            calls=budget, flow_fraction=0.5 if method.endswith("+flow") else 0.0,
            flow_config=NISConfig(calls=100_000, vegas_layer=True),
        )
        mc = fit_multichannel(phys["target"], phys["maps"], cfg, generator=g)
        calls, train_s = mc.n_eval, mc.seconds
        res = mc.integrate(n_eval, generator=torch.Generator().manual_seed(seed + 7919),
                           check=False)
    elif method == "vegas-torch":
        n_iter = 20
        per_iter = budget // n_iter
        vm = VegasMap(dims, bins=vegas_bins(dims, per_iter, calls_per_bin=10, max_bins=1000))
        vm.adapt(f, n_iter, per_iter, generator=g)
        calls = per_iter * n_iter
        train_s = time.perf_counter() - t
        res = _weights(f, vm, n_eval, seed)
    else:
        cfg = NISConfig(calls=budget, vegas_fraction=0.2 if method == "vegas+flow" else 0.0)
        nf = fit(f, dims, cfg, generator=g)
        calls, train_s = nf.n_eval, nf.seconds
        res = _weights(f, nf.proposal, n_eval, seed)
        if dims == 4:
            row["sample_events_per_s"] = sampling_rate(nf.proposal, g)
    row.update(
        status="ok",
        train_calls=calls,
        train_s=train_s,
        rel_std=res.rel_std,
        unweighting_efficiency=res.unweighting_efficiency,
        value=res.value,
        error=res.error,
        pull=(res.value - exact) / math.hypot(res.error, ref_err) if math.isfinite(exact)
        else None,
        reference=exact if math.isfinite(exact) else None,
    )
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Medians over seeds per (problem, method)."""
    out = []
    keys = sorted(
        {(r["problem"], r["method"]) for r in rows}, key=lambda k: (k[0], METHODS.index(k[1]))
    )
    for p, m in keys:
        rs = [r for r in rows if r["problem"] == p and r["method"] == m]
        ok = [r for r in rs if r.get("status") == "ok"]
        if not ok:
            out.append({"problem": p, "method": m, "status": rs[0].get("status")})
            continue

        def med(k, rows=ok):
            return statistics.median(r[k] for r in rows)

        s = {"problem": p, "method": m, "status": "ok", "seeds": len(ok)}
        for k in ("train_calls", "train_s", "rel_std", "unweighting_efficiency", "value", "error"):
            s[k] = med(k)
        pulls = [abs(r["pull"]) for r in ok if r.get("pull") is not None]
        s["median_abs_pull"] = statistics.median(pulls) if pulls else None
        s["within_5sigma"] = sum(p < 5 for p in pulls) if pulls else None
        s["within_3sigma"] = sum(p < 3 for p in pulls) if pulls else None
        if any("sample_events_per_s" in r for r in ok):
            s["sample_events_per_s"] = statistics.median(
                r["sample_events_per_s"] for r in ok if "sample_events_per_s" in r
            )
        out.append(s)
    _add_ratios(out)
    return out


RATIO_KEYS = ("unweighting_efficiency", "rel_std", "train_s")


def _add_ratios(summary: list[dict], baseline: str = "madnis-1.0.0") -> None:
    """Add ``<key>_vs_madnis`` (this method's median over the baseline's, same problem) for
    ``RATIO_KEYS`` to every ok row of a problem where the baseline ran."""
    base = {s["problem"]: s for s in summary if s["method"] == baseline and s["status"] == "ok"}
    for s in summary:
        b = base.get(s["problem"])
        if b is None or s["status"] != "ok":
            continue
        for k in RATIO_KEYS:
            s[f"{k}_vs_madnis"] = s[k] / b[k] if b[k] else None


def markdown(summary: list[dict]) -> str:
    """The summary as a Markdown table."""
    head = (
        "| problem | method | train calls | train s | rel. w std | unw. eff (0.1%) "
        "| integral ± error | med. |pull| | in 5σ | in 3σ | sampling ev/s (4D) "
        "| eff / madnis | w std / madnis | train s / madnis |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )

    def fmt(v, spec):
        return "" if v is None else format(v, spec)

    lines = [head]
    for s in summary:
        if s["status"] != "ok":
            lines.append(f"| {s['problem']} | {s['method']} | {s['status']} "
                         "| | | | | | | | | | | |")
            continue
        n = s["seeds"]
        in5 = "" if s["within_5sigma"] is None else f"{s['within_5sigma']}/{n}"
        in3 = "" if s["within_3sigma"] is None else f"{s['within_3sigma']}/{n}"
        lines.append(
            f"| {s['problem']} | {s['method']} | {s['train_calls']:.0f} | {s['train_s']:.1f} "
            f"| {s['rel_std']:.3g} | {s['unweighting_efficiency']:.3g} "
            f"| {s['value']:.6g} ± {s['error']:.2g} | {fmt(s['median_abs_pull'], '.2f')} "
            f"| {in5} | {in3} "
            f"| {s.get('sample_events_per_s', math.nan):.3g} "
            f"| {fmt(s.get('unweighting_efficiency_vs_madnis'), '.2f')} "
            f"| {fmt(s.get('rel_std_vs_madnis'), '.2f')} "
            f"| {fmt(s.get('train_s_vs_madnis'), '.2f')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100k training calls, 20k evaluation")
    ap.add_argument("--budget", type=int, default=None, help="training calls (default 1.0M)")
    ap.add_argument("--n-eval", type=int, default=None)
    ap.add_argument("--problems", default=",".join(PROBLEMS),
                    help=f"comma-separated; toys {list(PROBLEMS)} and physics {list(PHYSICS)}")
    ap.add_argument("--process", default=None,
                    help="a registered process as the problem (replaces --problems), e.g. "
                         "w-jets with --set n_jets=2")
    ap.add_argument("--set", dest="assignments", action="append", default=[],
                    metavar="NAME=VALUE", help="a setting of --process (repeatable)")
    ap.add_argument("--methods", default=None,
                    help=f"comma-separated of {list(METHODS)} (default all; for {W2J}: "
                         f"{','.join(W2J_METHODS)})")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/nis.json")
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument(
        "--merge", nargs="+", default=None,
        help="combine the rows of earlier result files (same budget) instead of running",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warm_up()
    problems = [ALIASES.get(p, p) for p in args.problems.split(",")]
    if args.process is not None:
        problems = [process_problem_name(args.process, args.assignments)]
    elif args.assignments:
        ap.error("--set needs --process")
    w2j = problems == [W2J]
    methods = (args.methods or ",".join(W2J_METHODS if w2j else METHODS)).split(",")
    for m in methods:
        if m not in METHODS:
            ap.error(f"--methods: expected names of {list(METHODS)}, got {m!r}")
    default_budget, default_eval = W2J_BUDGET if w2j else (1_000_000, 200_000)
    budget = args.budget or (100_000 if args.quick else default_budget)
    n_eval = args.n_eval or (20_000 if args.quick else default_eval)
    rows = []
    if args.merge:
        for path in args.merge:
            with open(path) as fh:
                d = json.load(fh)
            budget, n_eval = d["budget"], d["n_eval"]
            rows += d["rows"]
    else:
        # seeds outside methods: a change of the machine's load during the run spreads
        # over all methods instead of biasing the training times of some
        for p in problems:
            for seed in range(args.seed_start, args.seed_start + args.seeds):
                for m in methods:
                    r = run_one(p, m, seed, budget, n_eval)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    summary = summarise(rows)
    table = markdown(summary)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"budget": budget, "n_eval": n_eval, "threads": args.threads, "rows": rows,
                   "summary": summary, "table": table}, fh, indent=1)


if __name__ == "__main__":
    main()
