r"""Our samplers against MadSpace 0.2.1 (MadGraph 7's phase-space library) on our |M|².

**What madspace can run with our |M|².** madspace's generator (``EventGenerator`` →
``ChannelEventGenerator`` → ``Integrand``) evaluates matrix elements only through
``DifferentialCrossSection`` → ``MatrixElement``, whose constructor takes a
``matrix_element_index`` into the ``Context``'s UMAMI libraries
(``Context.load_matrix_element(file, param_card)``: a compiled shared object exporting
``umami_initialize`` / ``umami_matrix_element`` …, in practice MadGraph's cudacpp
output). Every other piece (``Mapping`` / ``FunctionGenerator`` subclasses, also those
written in Python) only records instructions of madspace's fixed instruction set
(``FunctionBuilder``) into a compute graph that its C++ runtime executes: there is no
instruction that calls back into Python, so a torch |M|² (or our PDFs, scales and
cuts) cannot be placed inside madspace's ``Integrand``, its VEGAS survey, its
unweighter or its MadNIS training (``MadnisTraining`` trains on an ``Integrand``).
The only remaining route into the generator would be a hand-written C shim exporting
the UMAMI symbols that calls a Python function pointer; that would also hand the PDFs,
α_s, scales and cuts to madspace's own implementations (a different integrand), so it
is not what is compared here.

**The deepest level that runs with our |M|²**: madspace's phase-space mappings and its
VEGAS, driven from Python. Unit-hypercube numbers → (optionally) madspace's
``VegasMapping`` (grid trained with its ``VegasHistogram`` and ``VegasGridOptimizer``,
damping 0.2 as its ``GeneratorConfig.vegas_damping``) → madspace's
``PhaseSpaceMapping`` → momenta, x1, x2 and the Jacobian → our
:class:`forward.integrand.HadronicIntegrand` (PDFs × |M|² × flux × cuts) in torch →
our unweighting (:func:`forward.nis.unweight`, 0.1 % overweight) for every method.

**Conventions matched** (checked by the cross-section agreement of
``tests/test_benchmark_madspace.py``): madspace's ``momenta`` are (batch, 2 + n, 4) as
(E, px, py, pz) in GeV in the lab frame, the two incoming partons first (beam 1 along
+z, x1 √s/2), then the outgoing ones in the order of the mapping's external masses;
we keep ``momenta[:, 2:]`` in the process's ``final_state`` order (Drell–Yan ℓ⁻ ℓ⁺,
jets g g g: massless and symmetric under the mapping's labels). Its Jacobian ``det``
is w.r.t. dx1 dx2 dΦ_n with the (2π)^(4-3n) factors included, the same measure
dμ = dx1 dx2 dΦ_n as ours (a massless 2-body leptonic map averages to 1/(8π)); points
the mapping marks unphysical get det = 0 and weight 0 here.

Mappings: Drell–Yan (``drell-yan``, 60 < m_ℓℓ < 120 GeV) uses the s-channel topology
q q̄ → Z → ℓℓ with the Z's Breit–Wigner and the m_ℓℓ window as the propagator's energy
window; ``jets`` (n_jets = 3, ``gg>ggg``, p_T > 50 GeV, |η| < 4.5, ΔR > 0.4) uses
madspace's CHILI mapping with the p_T and η cuts folded into the sampling (the ΔR cut
and the rest of our cuts stay in our integrand). Methods, each trained on the same
number of integrand calls and evaluated on the same number of fresh points:

- ``madspace-flat``: madspace's mapping alone (no training);
- ``madspace-vegas``: madspace's mapping + madspace's VEGAS;
- ``ours-vegas``: our first map of ``process.phase_space()`` + our
  :class:`forward.nis.VegasMap` (same rounds and bins);
- ``ours-multichannel``: :func:`forward.nis.fit_multichannel` over all our maps;
- ``ours-flow``: :func:`forward.nis.fit` (VEGAS warm start + flow) on our first map.

Reported per method (medians over seeds): unweighting efficiency ⟨|w|⟩/w_max at 0.1 %
overweight, unweighted events per second of wall time in the generation phase
(weights of ``n_eval`` fresh points + unweighting) and including training, σ ± error
in pb and its pull against the named baseline run in the same call, and ratios of
efficiency and rate against the baselines ``madspace-vegas`` and ``madspace-flat``.

    OMP_NUM_THREADS=1 python3 benchmarks/madspace.py --quick
    OMP_NUM_THREADS=1 python3 benchmarks/madspace.py --seeds 3 \\
        --out benchmarks/results/madspace.json

madspace stays a benchmark-only dependency (``pip install madspace==0.2.1``); it is
never imported by ``forward`` or ``invsim``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

if __name__ == "__main__":
    # run as a script, this file's folder heads sys.path and would shadow the madspace
    # package by this module's own name
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import torch  # noqa: E402

from forward.events import HardEvents  # noqa: E402
from forward.integrand import HadronicIntegrand  # noqa: E402
from forward.nis import (  # noqa: E402
    MultiChannelConfig,
    NISConfig,
    VegasMap,
    fit,
    fit_multichannel,
    hadronic_channels,
    unweight,
)

__all__ = [
    "BASELINES",
    "METHODS",
    "PROBLEMS",
    "MadspaceMap",
    "MadspaceVegas",
    "main",
    "madspace_map",
    "run_one",
    "summarise",
    "vegas_rebin",
]

METHODS = ("madspace-flat", "madspace-vegas", "ours-vegas", "ours-multichannel", "ours-flow")
#: methods the ratios are taken against
BASELINES = ("madspace-vegas", "madspace-flat")
PROBLEMS = ("drell-yan", "jets-3")
OVERWEIGHT = 1e-3
VEGAS_BINS = 64
VEGAS_ROUNDS = 10
#: madspace's GeneratorConfig().vegas_damping
MADSPACE_DAMPING = 0.2


def _process(problem: str):
    from forward.processes import get_process

    if problem == "drell-yan":
        return get_process("drell-yan")
    if problem == "jets-3":
        return get_process("jets", n_jets=3, channels="gg>ggg")
    raise ValueError(f"problem: expected one of {PROBLEMS}, got {problem!r}")


def _context(threads: int = 1):
    import madspace as ms

    return ms.Context(threads)


def madspace_map(problem: str, process):
    """madspace's ``PhaseSpaceMapping`` for one of :data:`PROBLEMS`.

    Args:
        problem: ``"drell-yan"`` or ``"jets-3"``.
        process: the matching process (its √s, window and cuts are read).

    Returns:
        A ``madspace.PhaseSpaceMapping`` (hadronic: 2 random numbers for x1, x2 and ŝ).
    """
    import madspace as ms

    sqrt_s = float(process.sqrt_s)
    if problem == "drell-yan":
        from forward.processes.electroweak import MZ, z_width

        lr = ms.LineRef
        prop = ms.Propagator(MZ, float(z_width()), 0, float(process.mll_min),
                             float(process.mll_max), 23)
        diagram = ms.Diagram([0.0, 0.0], [0.0, 0.0], [prop],
                             [[lr("i0"), lr("i1"), lr("p0")], [lr("p0"), lr("o0"), lr("o1")]])
        return ms.PhaseSpaceMapping(ms.Topology(diagram), sqrt_s)
    if problem == "jets-3":
        n = len(process.final_state)
        obs = ms.Observable.ObservableOption
        pids = [21] * (n + 2)  # all external legs, the beams first (ignored by the cut)
        items = [ms.CutItem(ms.Observable(pids, obs.obs_pt, [[21]]), float(process.pt_min))]
        if process.eta_max is not None:
            items.append(ms.CutItem(ms.Observable(pids, obs.obs_eta_abs, [[21]]),
                                    max=float(process.eta_max)))
        cuts = ms.Cuts(items)
        return ms.PhaseSpaceMapping([0.0] * (n + 2), sqrt_s,
                                    mode=ms.PhaseSpaceMapping.TChannelMode.chili, cuts=cuts)
    raise ValueError(f"problem: expected one of {PROBLEMS}, got {problem!r}")


def _tensors(outputs) -> list[torch.Tensor]:
    return [torch.from_dlpack(o) for o in outputs]


def vegas_rebin(edges: torch.Tensor, values: torch.Tensor, counts: torch.Tensor,
                damping: float = MADSPACE_DAMPING) -> torch.Tensor:
    """One VEGAS grid refinement (Lepage 1978) from per-bin sums of squared weights.

    Per dimension: mean of w² per bin, smoothed over neighbouring bins (3-bin average,
    2 at the ends, as madspace), normalised to r_i, damped to ((1 − r_i) / −ln r_i)^α,
    then new edges that give every bin the same share of the damped amounts.

    Args:
        edges: grid edges, shape (d, bins + 1), float64, rows increasing from 0 to 1.
        values: Σ w² per bin, shape (d, bins).
        counts: points per bin, shape (d, bins).
        damping: exponent α.

    Returns:
        New edges, shape (d, bins + 1).
    """
    if edges.dim() != 2 or values.shape != (edges.shape[0], edges.shape[1] - 1):
        raise ValueError(f"values: expected shape {(edges.shape[0], edges.shape[1] - 1)} "
                         f"for edges {tuple(edges.shape)}, got {tuple(values.shape)}")
    avg = values / counts.clamp(min=1).to(values.dtype)
    smooth = avg.clone()
    smooth[:, 1:-1] = (avg[:, :-2] + avg[:, 1:-1] + avg[:, 2:]) / 3.0
    smooth[:, 0] = (avg[:, 0] + avg[:, 1]) / 2.0
    smooth[:, -1] = (avg[:, -2] + avg[:, -1]) / 2.0
    new = edges.clone()
    bins = values.shape[1]
    for i in range(edges.shape[0]):
        total = float(smooth[i].sum())
        if not total > 0:
            continue
        r = (smooth[i] / total).clamp(min=1e-10)
        d = torch.where(r < 1 - 1e-8, ((1 - r) / -torch.log(r)) ** damping, r)
        cum = torch.cat([d.new_zeros(1), d.cumsum(0)])
        targets = cum[-1] * torch.arange(1, bins, dtype=d.dtype) / bins
        j = (torch.searchsorted(cum, targets) - 1).clamp(0, bins - 1)
        e = edges[i]
        new[i, 1:-1] = e[j] + (targets - cum[j]) / d[j] * (e[j + 1] - e[j])
    return new


class MadspaceVegas:
    """madspace's VEGAS grid (``VegasMapping``) with its ``VegasHistogram`` statistics.

    madspace 0.2.1's ``VegasGridOptimizer.add_data`` cannot be called from Python: its
    binding converts ``values`` as a batch of floats (n,) and ``counts`` as an
    (n, dims) float array, while the C++ reads both as (1, dims, bins) (double and
    int64); every call fails with a dtype or shape error, or ``std::bad_alloc``. The
    refinement step is therefore :func:`vegas_rebin`, written into madspace's grid
    global in place (the ``Context`` shares it through DLPack), with madspace's damping.

    Args:
        dims: dimension of the cube.
        bins: bins per dimension.
        context: the madspace ``Context`` the grid global lives in.
        name: prefix of the grid's global name (unique per context).
        damping: VEGAS damping exponent (madspace's default 0.2).
    """

    def __init__(self, dims: int, bins: int, context, name: str,
                 damping: float = MADSPACE_DAMPING) -> None:
        import madspace as ms

        self.dims = dims
        self.damping = damping
        self.mapping = ms.VegasMapping(dims, bins, name)
        self.mapping.initialize_globals(context)
        self._grid = torch.from_dlpack(context.get_global(self.mapping.grid_name()))
        self._forward = ms.FunctionRuntime(self.mapping.forward_function(), context)
        self._hist = ms.FunctionRuntime(ms.VegasHistogram(dims, bins).function(), context)
        self._values = torch.zeros(dims, bins, dtype=torch.float64)
        self._counts = torch.zeros(dims, bins, dtype=torch.int64)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cube points u (n, d) float64 → grid points (n, d) and Jacobian (n,)."""
        x, det = _tensors(self._forward.call([u.contiguous()]))
        return x, det

    def add_data(self, u: torch.Tensor, weights: torch.Tensor) -> None:
        """Accumulate (madspace's ``VegasHistogram``) the weights f/q (n,) of latent u (n, d)."""
        values, counts = _tensors(self._hist.call([u.contiguous(), weights.contiguous()]))
        self._values += values[0]
        self._counts += counts[0]

    def optimize(self) -> None:
        """Refine the grid from the data added since the last call."""
        self._grid[0] = vegas_rebin(self._grid[0], self._values, self._counts, self.damping)
        self._values.zero_()
        self._counts.zero_()


class MadspaceMap:
    """A madspace mapping as one of our phase-space maps: ``forward(r) -> (events, log_jac)``.

    Args:
        mapping: a ``madspace.PhaseSpaceMapping`` (hadronic).
        sqrt_s: collider energy in GeV.
        context: madspace ``Context`` to run in.

    Attributes:
        dim: number of random numbers per point.
    """

    def __init__(self, mapping, sqrt_s: float, context) -> None:
        import madspace as ms

        self.dim = int(mapping.random_dim())
        self.sqrt_s = float(sqrt_s)
        self._forward = ms.FunctionRuntime(mapping.forward_function(), context)

    def momenta(self, r: torch.Tensor):
        """Cube points r (n, dim) float64 → momenta (n, 2 + k, 4), x1, x2, det (n,)."""
        return _tensors(self._forward.call([r.contiguous()]))

    def forward(self, r: torch.Tensor) -> tuple[HardEvents, torch.Tensor]:
        """Final-state events and log-Jacobian w.r.t. dx1 dx2 dΦ_n (−inf where unphysical)."""
        p, x1, x2, det = self.momenta(r)
        return HardEvents(p[:, 2:].contiguous(), x1, x2, self.sqrt_s), torch.log(det)


def _weights_on_map(integrand: HadronicIntegrand, ms_map: MadspaceMap, r: torch.Tensor,
                    vegas: MadspaceVegas | None = None) -> torch.Tensor:
    """Weights dσ/dμ · Jacobians (n,) in pb of cube points r through (vegas →) ms_map."""
    jac = torch.ones(r.shape[0], dtype=torch.float64)
    if vegas is not None:
        r, jac = vegas.forward(r)
    p, x1, x2, det = ms_map.momenta(r)
    w = torch.zeros_like(det)
    ok = det > 0
    if bool(ok.any()):
        ev = HardEvents(p[ok][:, 2:].contiguous(), x1[ok], x2[ok], ms_map.sqrt_s)
        w[ok] = integrand.differential(ev) * det[ok] * jac[ok]
    return w


def _ours_cube(integrand: HadronicIntegrand):
    def f(r: torch.Tensor) -> torch.Tensor:
        return integrand(r.to(torch.float64))

    return f


def _train(method: str, integrand, problem: str, budget: int, seed: int, ctx):
    """Train ``method``; returns (draw(n, gen) -> weights, train calls, train seconds)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    if method.startswith("madspace"):
        ms_map = MadspaceMap(madspace_map(problem, integrand.process),
                             integrand.process.sqrt_s, ctx)
        vegas = None
        calls = 0
        if method == "madspace-vegas":
            vegas = MadspaceVegas(ms_map.dim, VEGAS_BINS, ctx, f"bench{seed}_{problem}")
            per = budget // VEGAS_ROUNDS
            for _ in range(VEGAS_ROUNDS):
                u = torch.rand(per, ms_map.dim, generator=g, dtype=torch.float64)
                vegas.add_data(u, _weights_on_map(integrand, ms_map, u, vegas))
                vegas.optimize()
            calls = per * VEGAS_ROUNDS

        def draw(n, gen):
            u = torch.rand(n, ms_map.dim, generator=gen, dtype=torch.float64)
            return _weights_on_map(integrand, ms_map, u, vegas)

        return draw, calls, time.perf_counter() - t0
    if method == "ours-multichannel":
        target, maps = hadronic_channels(integrand)
        mc = fit_multichannel(target, maps, MultiChannelConfig(calls=budget), generator=g)

        def draw(n, gen):
            return mc.sample(n, generator=gen).weights

        return draw, mc.n_eval, mc.seconds
    f = _ours_cube(integrand)
    if method == "ours-vegas":
        vm = VegasMap(integrand.dim, bins=VEGAS_BINS)
        per = budget // VEGAS_ROUNDS
        vm.adapt(f, VEGAS_ROUNDS, per, generator=g)
        proposal, calls = vm, per * VEGAS_ROUNDS
        seconds = time.perf_counter() - t0
    elif method == "ours-flow":
        nf = fit(f, integrand.dim, NISConfig(calls=budget), generator=g)
        proposal, calls, seconds = nf.proposal, nf.n_eval, nf.seconds
    else:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")

    def draw(n, gen):
        with torch.no_grad():
            x, log_q = proposal.sample(n, generator=gen)
            return f(x) * torch.exp(-log_q)

    return draw, calls, seconds


def run_one(problem: str, method: str, seed: int, budget: int, n_eval: int) -> dict:
    """Train one method with ``budget`` calls and generate from ``n_eval`` fresh points.

    Returns:
        A row: train calls and seconds, σ ± error (pb), unweighting efficiency, the
        number of unweighted events and their rate (per second of generation wall time,
        and including training).
    """
    row = {"problem": problem, "method": method, "seed": seed}
    try:
        ctx = _context() if method.startswith("madspace") else None
    except ImportError as e:
        row["status"] = f"not installed ({e.name})"
        return row
    integrand = HadronicIntegrand(_process(problem), channel=0)
    draw, calls, train_s = _train(method, integrand, problem, budget, seed, ctx)
    gen = torch.Generator().manual_seed(seed + 7919)
    t0 = time.perf_counter()
    w = draw(n_eval, gen)
    u = unweight(w, OVERWEIGHT, generator=gen)
    gen_s = time.perf_counter() - t0
    n_unw = int(u.indices.numel())
    row.update(
        status="ok", train_calls=int(calls), train_s=train_s, gen_s=gen_s, n_eval=n_eval,
        value=float(w.mean()), error=float(w.std()) / math.sqrt(w.numel()),
        rel_std=float(w.std() / w.abs().mean()), unweighting_efficiency=u.efficiency,
        n_unweighted=n_unw, unweighted_per_s=n_unw / gen_s,
        unweighted_per_s_with_training=n_unw / (gen_s + train_s),
    )
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Medians over seeds per (problem, method), pulls and ratios against :data:`BASELINES`."""
    out = []
    for p in dict.fromkeys(r["problem"] for r in rows):
        by = {}
        for m in METHODS:
            rs = [r for r in rows if r["problem"] == p and r["method"] == m]
            if not rs:
                continue
            ok = [r for r in rs if r.get("status") == "ok"]
            if not ok:
                by[m] = {"problem": p, "method": m, "status": rs[0].get("status")}
                continue
            s = {"problem": p, "method": m, "status": "ok", "seeds": len(ok)}
            for k in ("train_calls", "train_s", "gen_s", "value", "error", "rel_std",
                      "unweighting_efficiency", "unweighted_per_s",
                      "unweighted_per_s_with_training"):
                s[k] = statistics.median(r[k] for r in ok)
            # pull of every seed against the first baseline's run with the same seed
            by[m] = s
            s["_rows"] = ok
        for m, s in by.items():
            if s.get("status") != "ok":
                continue
            for b in BASELINES:
                bs = by.get(b)
                if bs is None or bs.get("status") != "ok":
                    continue
                s[f"efficiency_ratio_vs_{b}"] = s["unweighting_efficiency"] / bs[
                    "unweighting_efficiency"]
                s[f"rate_ratio_vs_{b}"] = s["unweighted_per_s"] / bs["unweighted_per_s"]
                pulls = []
                for r in s["_rows"]:
                    ref = [q for q in bs["_rows"] if q["seed"] == r["seed"]]
                    if ref:
                        q = ref[0]
                        pulls.append((r["value"] - q["value"]) / math.hypot(r["error"],
                                                                            q["error"]))
                if pulls and m != b:
                    s[f"pull_vs_{b}"] = statistics.median(pulls)
        for s in by.values():
            s.pop("_rows", None)
            out.append(s)
    return out


def markdown(summary: list[dict]) -> str:
    """The summary as a markdown table."""
    b = BASELINES[0]
    lines = [
        f"| problem | method | calls | train s | σ [pb] | pull vs {b} | eff. | "
        f"eff. / {b} | unw/s (gen) | rate / {b} | unw/s (incl. train) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        if s.get("status") != "ok":
            lines.append(f"| {s['problem']} | {s['method']} | {s.get('status')} |" + " |" * 8)
            continue
        pull = s.get(f"pull_vs_{b}")
        lines.append(
            f"| {s['problem']} | {s['method']} | {s['train_calls']:.0f} | {s['train_s']:.1f} | "
            f"{s['value']:.5g} ± {s['error']:.2g} | "
            f"{'—' if pull is None else f'{pull:+.2f}'} | {s['unweighting_efficiency']:.4f} | "
            f"{s.get(f'efficiency_ratio_vs_{b}', math.nan):.2f} | "
            f"{s['unweighted_per_s']:.3g} | {s.get(f'rate_ratio_vs_{b}', math.nan):.2f} | "
            f"{s['unweighted_per_s_with_training']:.3g} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--methods", default=None,
                    help=f"comma list of {METHODS} (default all but ours-flow with --quick)")
    ap.add_argument("--budget", type=int, default=200_000, help="training calls per method")
    ap.add_argument("--n-eval", type=int, default=200_000, help="fresh points per method")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="20k calls, 50k points, one seed, no flow")
    ap.add_argument("--out", default=None, help="JSON file (default benchmarks/results/"
                    "madspace[_quick].json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.budget, args.n_eval, args.seeds = 20_000, 50_000, 1
    methods = (args.methods.split(",") if args.methods else
               [m for m in METHODS if not (args.quick and m == "ours-flow")])
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"--methods: expected names from {METHODS}, got {m!r}")
    problems = args.problems.split(",")
    for p in problems:
        if p not in PROBLEMS:
            raise ValueError(f"--problems: expected names from {PROBLEMS}, got {p!r}")
    torch.set_num_threads(1)
    try:
        import madspace
        version = getattr(madspace, "__version__", None)
        if version is None:
            from importlib.metadata import version as _v
            version = _v("madspace")
    except ImportError:
        version = None
    rows = []
    for p in problems:
        for seed in range(args.seeds):
            for m in methods:
                row = run_one(p, m, seed, args.budget, args.n_eval)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = summarise(rows)
    print(markdown(summary))
    out = args.out or os.path.join(os.path.dirname(__file__), "results",
                                   "madspace_quick.json" if args.quick else "madspace.json")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as fh:
        json.dump({"madspace_version": version, "torch_threads": 1, "budget": args.budget,
                   "n_eval": args.n_eval, "seeds": args.seeds, "overweight": OVERWEIGHT,
                   "baselines": list(BASELINES), "rows": rows, "summary": summary}, fh,
                  indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
