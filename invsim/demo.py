"""The demo behind ``invsim demo``: the main job on the embedded default, as a report folder.

Forward half: the bundled NNPDF3.1 LO grid (compared with Pythia 8's own reader when
``pythia8mc`` is importable), the reference cross sections of Drell–Yan γ*/Z/Z′ and tt̄
against Pythia 8.317, and the lepton-pair mass spectrum with a 2 TeV Z′.

Inverse half (:mod:`invsim.demo_inverse`): networks trained on simulated pairs, the
ML-MEM likelihood of pseudo-data at a hidden Z′ mass and coupling, a likelihood scan,
the NUTS posterior as ArviZ InferenceData, and the coverage of its credible intervals.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from forward._validation import resolve_device

__all__ = ["run_demo"]

_PDF_POINTS = ((1e-3, 10.0), (1e-2, 100.0), (0.1, 100.0), (0.5, 1000.0))
_PDF_PIDS = {"g": 21, "u": 2, "d": 1, "ubar": -2}


def _pdf_table(pdf) -> list[dict]:
    """x·f of a few flavours at a few (x, Q) points, with Pythia's reader when available."""
    try:
        import pythia8mc

        pythia = pythia8mc.Pythia("", False)
        pythia.readString("PDF:pSet = 18")
        reference = pythia.getPDFPtr(2212)
    except ImportError:
        reference = None
    rows = []
    for x, q in _PDF_POINTS:
        xt = torch.tensor([x], dtype=torch.float64)
        q2 = torch.tensor([q * q], dtype=torch.float64)
        for name, pid in _PDF_PIDS.items():
            ours = float(pdf.xfxQ2(pid, xt, q2)[0])
            row = {"x": x, "Q_GeV": q, "parton": name, "xf": ours}
            if reference is not None:
                row["xf_pythia"] = float(reference.xf(pid, x, q * q))
            rows.append(row)
    return rows


def _cross_sections(n_events: int, seed: int, device, progress) -> list[dict]:
    from forward.processes import get_process
    from forward.references import PYTHIA_REFERENCES
    from forward.xsec import cross_section

    rows = []
    for key, ref in progress(PYTHIA_REFERENCES.items()):
        start = time.perf_counter()
        process = get_process(ref.process, **ref.settings)
        res = cross_section(process, n_events, params=ref.params, method="vegas", seed=seed,
                            device=device)
        pull = (res.value - ref.sigma_pb) / math.hypot(res.error, ref.error_pb)
        rows.append({
            "key": key, "label": ref.label, "sigma_pb": res.value, "error_pb": res.error,
            "rel_std": res.rel_std, "n_eval": res.n_eval, "pythia_pb": ref.sigma_pb,
            "pythia_error_pb": ref.error_pb, "pull": pull,
            "seconds": time.perf_counter() - start,
        })
    return rows


def _mll_spectrum(n_events: int, seed: int, device, path: Path) -> dict:
    """dσ/dm_ℓℓ from 50 GeV to 3 TeV with a 2 TeV Z′, as weighted events; PNG plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from forward.integrand import HadronicIntegrand
    from forward.processes import get_process

    process = get_process("drell-yan", mll_min=50.0, mll_max=3000.0)
    gen = torch.Generator(device=device).manual_seed(seed)
    integrand = HadronicIntegrand(process, device=device)
    edges = torch.logspace(math.log10(50.0), math.log10(3000.0), 61, dtype=torch.float64)
    sums = torch.zeros(60, dtype=torch.float64)
    sums2 = torch.zeros(60, dtype=torch.float64)
    maps = process.phase_space()
    per_map = n_events // len(maps)
    n_total = per_map * len(maps)
    # multi-channel estimate with equal channel weights: a point from map k carries
    # w = dσ/dμ / q(event), q = Σ_j q_j / n_maps the mixture density of all maps
    for k, ps_map in enumerate(maps):
        r = torch.rand(per_map, ps_map.dim, generator=gen, dtype=torch.float64, device=device)
        events, log_jac = ps_map.forward(r)
        with torch.no_grad():
            dsig = integrand.differential(events)
            log_q = []
            for j, other in enumerate(maps):
                if j == k:
                    log_q.append(-log_jac)
                    continue
                r_j, log_jac_inv = other.inverse(events)
                inside = ((r_j >= 0) & (r_j <= 1)).all(-1)
                log_q.append(torch.where(inside, log_jac_inv, -math.inf))
            log_mix = torch.logsumexp(torch.stack(log_q), 0) - math.log(len(maps))
            w = (dsig * torch.exp(-log_mix)).cpu()
        m_ll = process.observables(events)["m_ll"].cpu()
        idx = torch.bucketize(m_ll, edges) - 1
        ok = (idx >= 0) & (idx < 60)
        sums.index_add_(0, idx[ok], w[ok] / n_total)
        sums2.index_add_(0, idx[ok], w[ok] ** 2 / n_total)
    width = edges[1:] - edges[:-1]
    density = sums / width
    error = torch.sqrt(((sums2 - sums**2) / n_total).clamp(min=0)) / width
    fig, ax = plt.subplots(figsize=(6, 4))
    centres = torch.sqrt(edges[1:] * edges[:-1])
    ax.errorbar(centres, density, yerr=error, fmt=".", ms=3, label="invsim LO, NNPDF3.1 LO")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_{\ell\ell}$ [GeV]")
    ax.set_ylabel(r"$d\sigma/dm_{\ell\ell}$ [pb/GeV]")
    ax.set_title(r"pp $\to \gamma^*/Z/Z' \to \ell\ell$ (ee+$\mu\mu$), 13 TeV, $m_{Z'}$ = 2 TeV")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"sigma_pb": float(sums.sum()), "plot": path.name}


def run_demo(out: Path, *, quick: bool, seed: int = 0, device: str = "cpu",
             overwrite: bool = False, echo=print, progress=lambda it: it,
             experiments: int | None = None, inverse: bool = True) -> dict:
    """Run the demo and write ``summary.md``, ``results.json`` and ``mll.png`` into ``out``.

    Args:
        out: report folder; created if missing. An existing non-empty folder is
            refused unless ``overwrite`` is true, and then only if it holds a report
            (``results.json`` or ``summary.md``). The report is written into a
            temporary folder beside ``out`` and swapped in when complete
            (:func:`forward.files.atomic_directory`): an interrupted run leaves the old
            report whole.
        quick: small samples (a few minutes on a 2-core CPU) instead of GPU-sized ones.
        seed: seed of every Monte Carlo step.
        device: torch device for the integration.
        echo, progress: output and progress-bar hooks (the CLI passes click's).
        experiments: pseudo-experiments of the calibration (default: the preset's).
        inverse: run the inverse half (unfolding, ML-MEM, posterior, calibration).

    Returns:
        The results written to ``results.json``, with the run's
        :func:`forward.provenance.provenance` record under ``"provenance"``.

    Raises:
        FileExistsError: ``out`` holds files and ``overwrite`` is false, or is not a
            report folder.
    """
    from forward.files import atomic_directory

    device = str(resolve_device(device))

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"out: {out} exists and is not empty; pass --overwrite to replace")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out, overwrite, manifest=False, kind="demo report folder",
                          replaceable=lambda p: any((p / n).exists()
                                                    for n in ("results.json", "summary.md"))
                          ) as folder:
        return _run_demo(folder, quick=quick, seed=seed, device=device, echo=echo,
                         progress=progress, experiments=experiments, inverse=inverse)


def _run_demo(out: Path, *, quick: bool, seed: int, device: str, echo, progress,
              experiments: int | None, inverse: bool) -> dict:
    """The work of :func:`run_demo`, writing into the (temporary) folder ``out``."""
    from forward.pdf import mkPDF
    from forward.provenance import provenance

    n_xsec, n_plot = (100_000, 100_000) if quick else (4_000_000, 4_000_000)
    steps = 4 if inverse else 3

    echo(f"1/{steps} parton densities: NNPDF31_lo_as_0118")
    pdf = mkPDF("NNPDF31_lo_as_0118")
    pdf_rows = _pdf_table(pdf)
    echo(f"2/{steps} cross sections against Pythia 8.317")
    xsec_rows = _cross_sections(n_xsec, seed, device, progress)
    echo(f"3/{steps} lepton-pair mass spectrum with a 2 TeV Z'")
    spectrum = _mll_spectrum(n_plot, seed, device, out / "mll.png")
    results = {"quick": quick, "seed": seed, "device": str(device), "pdf": pdf_rows,
               "cross_sections": xsec_rows, "mll_spectrum": spectrum,
               "provenance": provenance(process="drell-yan", pdf=pdf, seed=seed,
                                        device=device, quick=quick, inverse=inverse,
                                        experiments=experiments)}
    if inverse:
        from dataclasses import replace

        from invsim.demo_inverse import DEFAULT, QUICK, run_inverse

        preset = QUICK if quick else DEFAULT
        if experiments is not None:
            preset = replace(preset, experiments=experiments)
        echo(f"4/{steps} inverse simulation: Z' mass and coupling from reco events")
        start = time.perf_counter()
        results["inverse"] = run_inverse(out, preset, seed=seed, echo=echo, device=device)
        results["inverse"]["seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "summary.md").write_text(_summary_markdown(results))
    return results


def _summary_markdown(results: dict) -> str:
    lines = ["# invsim demo", "",
             f"Preset: {'quick' if results['quick'] else 'default'}; seed {results['seed']}; "
             f"device {results['device']}.", "",
             "## Cross sections against Pythia 8.317 (13 TeV, NNPDF3.1 LO)", "",
             "| set-up | invsim [pb] | Pythia [pb] | pull (σ) | rel. weight std |",
             "|---|---|---|---|---|"]
    for r in results["cross_sections"]:
        lines.append(f"| {r['label']} | {r['sigma_pb']:.6g} ± {r['error_pb']:.2g} | "
                     f"{r['pythia_pb']:.6g} ± {r['pythia_error_pb']:.2g} | {r['pull']:+.2f} | "
                     f"{r['rel_std']:.3f} |")
    lines += ["", "## Parton densities x·f(x, Q)", "",
              "| x | Q [GeV] | parton | invsim | Pythia's reader |", "|---|---|---|---|---|"]
    for r in results["pdf"]:
        ref = f"{r['xf_pythia']:.6g}" if "xf_pythia" in r else "n/a"
        lines.append(f"| {r['x']:g} | {r['Q_GeV']:g} | {r['parton']} | {r['xf']:.6g} | {ref} |")
    lines += ["", "## Lepton-pair mass spectrum", "",
              f"σ(50 < m_ℓℓ < 3000 GeV) = {results['mll_spectrum']['sigma_pb']:.5g} pb", "",
              "![m_ll](mll.png)", ""]
    if "inverse" in results:
        from invsim.demo_inverse import inverse_markdown

        lines += inverse_markdown(results["inverse"])
    return "\n".join(lines)
