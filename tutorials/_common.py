"""The set-up tutorials 2–4 share: the Z′ analysis, its command line, pseudo-data, results.

Each function is a few lines; read it next to the tutorial that calls it. The tutorials
import it as ``import _common as common``: Python puts the folder of the script it runs
(``tutorials/``) first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from forward.detector import GaussianLeptonDetector
from forward.processes import get_process
from invsim.mem import MEMLikelihood
from invsim.pairs import simulate

#: the m_ℓℓ window of the analysis, around the 2 TeV Z′ peak
WINDOW = {"mll_min": 1500.0, "mll_max": 2500.0}


def zprime_process():
    """Drell–Yan ℓℓ with a Z′ (at the process defaults mzp = 2000 GeV, gzp = 1) in the
    window 1500 < m_ℓℓ < 2500 GeV."""
    return get_process("drell-yan", **WINDOW)


def lepton_detector() -> GaussianLeptonDetector:
    """The Gaussian lepton detector of tutorials 2 and 3: σ(pT)/pT = 3 %, σ(η) = σ(φ) = 0.02,
    and pT > 100 GeV, |η| < 2.5 for both leptons."""
    return GaussianLeptonDetector(sigma_pt=0.03, sigma_eta=0.02, sigma_phi=0.02,
                                  pt_min=100.0, eta_max=2.5)


def tutorial_parser(doc: str, *, n_samples: int) -> argparse.ArgumentParser:
    """The options every tutorial has: the output folder, the training sizes, the importance
    samples per event (default ``n_samples``) and the seed; a tutorial adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("out", nargs="?", default=None,
                        help="output folder (default: a new temporary folder)")
    parser.add_argument("--trials", type=int, default=150_000, help="training trial points")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per network")
    parser.add_argument("--n-samples", type=int, default=n_samples,
                        help="importance samples per event")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def output_folder(out: str | None, prefix: str) -> Path:
    """The folder ``out`` (created if missing), or a new temporary one named ``prefix…``."""
    path = Path(out) if out else Path(tempfile.mkdtemp(prefix=prefix))
    path.mkdir(parents=True, exist_ok=True)
    return path


def accepted_events(process, detector, truth: dict, *, seed: int,
                    n: int = 20_000) -> torch.Tensor:
    """Simulate ``n`` events at the parameters ``truth`` through ``detector`` and keep the
    accepted ones: (m, 6) reco (pT [GeV], η, φ) of ℓ⁻ then ℓ⁺."""
    sim = simulate(process, detector, n, truth, seed=seed)
    return sim.x_reco[sim.passed]


def fiducial_cross_section(model, events: torch.Tensor, theta: dict, *, names,
                           seed: int) -> float:
    """σ_fid(θ) in pb: the acceptance-weighted cross section that a
    :class:`invsim.mem.MEMLikelihood` estimates on its fixed sample of 40 000 hard events.

    ``events`` are the reco events the likelihood is bound to; σ_fid does not depend on
    them, but their importance samples are drawn first from the ``seed`` stream."""
    lik = MEMLikelihood(model, events, n_samples=25, parameter_names=names,
                        n_fiducial=40_000, seed=seed, on_flagged="ignore")
    return float(torch.exp(lik.log_sigma_fid(theta)))


def poisson_count(mean: float, *, seed: int) -> int:
    """An event count N ~ Poisson(mean), drawn with its own seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return int(torch.poisson(torch.tensor(mean), generator=gen))


def write_results(results: dict, out: Path, t_start: float) -> None:
    """Add the run time since ``t_start`` (``time.perf_counter()``) to ``results`` as
    ``"seconds"`` and write them to ``out/results.json``."""
    results["seconds"] = time.perf_counter() - t_start
    with open(out / "results.json", "w") as f:
        json.dump(results, f, indent=1)
