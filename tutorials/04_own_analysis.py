"""Tutorial 4: invsim inside your own analysis — your events file, your detector.

What you learn:

1. read your own reconstructed dilepton events from a ROOT (uproot) or HDF5 (h5py) file
   with flat branches ``lep1_pt, lep1_eta, lep1_phi, lep1_charge, lep2_...`` into the
   (n, 6) tensor invsim expects: (pT [GeV], η, φ) of ℓ⁻ then ℓ⁺ (here the tutorial first
   writes such files itself, to play your data);
2. describe your detector by a small class with
   ``smear(x_hard, *, generator=None) -> (x_reco, passed)``; here a muon-like
   resolution that grows with pT, σ(pT)/pT = √(a² + (b·pT)²), unlike the constant
   relative resolution of :class:`forward.detector.GaussianLeptonDetector`;
3. train the ML-MEM networks on your detector with the recipe
   :func:`invsim.mem.recipe.build_dilepton_model` and scan the Z′ mass of your events;
4. plug your own pieces into :class:`invsim.mem.MEMModel`: when you know your transfer
   function r(x_reco | x_hard) and acceptance ε(x_hard) in closed form, any object with
   ``log_prob(x_reco, x_hard)`` and ``logits(x_hard)`` replaces the networks — and
   gives an independent check of the learned ones.

    python3 tutorials/04_own_analysis.py            # writes into a temp folder
    python3 tutorials/04_own_analysis.py out/ --trials 300000
"""

# %% imports and settings
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

# tutorials/_common.py: the Z′ process, detector, options and pseudo-data of tutorials 2–4
import _common as common
import numpy as np
import torch

from forward.detector import GaussianLeptonDetector
from invsim.mem import MEMLikelihood, MEMModel, StratifiedMixtureProposal
from invsim.mem.recipe import build_dilepton_model
from invsim.mem.reco_proposal import RecoGaussianProposal
from invsim.scan import scan

__all__ = ["MuonDetector", "ClosedFormAcceptance", "ClosedFormTransfer", "main",
           "read_dilepton_file"]

TRUTH = {"mzp": 2030.0}
BRANCHES = [f"lep{i}_{v}" for i in (1, 2) for v in ("pt", "eta", "phi", "charge")]


# %% 1. your detector: a small class with smear(x_hard, generator=) -> (x_reco, passed)
class MuonDetector:
    """Muon-like smearing: σ(pT)/pT = √(a² + (b pT)²), Gaussian η and φ, pT and |η| cuts.

    Args:
        a: relative pT resolution at low pT.
        b: growth of the relative resolution, per GeV.
        sigma_eta, sigma_phi: absolute η and φ [rad] resolutions.
        pt_min: reco pT threshold in GeV; eta_max: reco |η| limit.
    """

    def __init__(self, a: float = 0.01, b: float = 4e-5, sigma_eta: float = 0.01,
                 sigma_phi: float = 0.01, pt_min: float = 100.0, eta_max: float = 2.4):
        self.a, self.b, self.sigma_eta, self.sigma_phi = a, b, sigma_eta, sigma_phi
        self.pt_min, self.eta_max = pt_min, eta_max

    def widths(self, x_hard: torch.Tensor) -> torch.Tensor:
        """σ of (pT, η, φ) per lepton, shape (n, 2, 3), for x_hard of shape (n, 6)."""
        pt = x_hard.view(-1, 2, 3)[..., 0]
        return torch.stack([pt * torch.sqrt(self.a ** 2 + (self.b * pt) ** 2),
                            torch.full_like(pt, self.sigma_eta),
                            torch.full_like(pt, self.sigma_phi)], -1)

    def smear(self, x_hard: torch.Tensor, *, generator: torch.Generator | None = None):
        """x_hard (n, 6) as (pT [GeV], η, φ) of ℓ⁻, ℓ⁺ -> (x_reco (n, 6), passed (n,) bool)."""
        z = torch.randn(x_hard.shape, generator=generator, dtype=x_hard.dtype,
                        device=x_hard.device)
        y = x_hard.view(-1, 2, 3) + self.widths(x_hard) * z.view(-1, 2, 3)
        y[..., 2] = torch.remainder(y[..., 2] + math.pi, 2 * math.pi) - math.pi
        passed = ((y[..., 0] > self.pt_min) & (y[..., 1].abs() < self.eta_max)).all(-1)
        return y.reshape(x_hard.shape), passed


# %% 2. your own transfer and acceptance in closed form (optional; networks otherwise)
class ClosedFormAcceptance:
    """ε(x_hard) of :class:`MuonDetector` as ``logits(x_hard) -> (n,)`` (MEMModel's API)."""

    def __init__(self, detector: MuonDetector) -> None:
        self.detector = detector

    def log_eps(self, x_hard: torch.Tensor) -> torch.Tensor:
        """log ε, shape (n,), for x_hard (n, 6)."""
        d, s = self.detector, self.detector.widths(x_hard)
        y = x_hard.view(-1, 2, 3)
        lp = torch.special.log_ndtr((y[..., 0] - d.pt_min) / s[..., 0])
        # P(|η'| < η_max) = Φ((η_max − |η|)/σ) − Φ((−η_max − |η|)/σ); the second term is
        # below Φ(−η_max/σ_η) = Φ(−240) and dropped, log_ndtr stays finite in the tail
        le = torch.special.log_ndtr((d.eta_max - y[..., 1].abs()) / d.sigma_eta)
        return (lp + le).sum(-1)

    def logits(self, x_hard: torch.Tensor) -> torch.Tensor:
        """logit ε = log ε − log(1 − ε), shape (n,)."""
        le = self.log_eps(x_hard)
        return le - torch.log(-torch.expm1(le))


class ClosedFormTransfer:
    """r(x_reco | x_hard) of accepted events, as ``log_prob(x_reco, x_hard) -> (n,)``."""

    def __init__(self, detector: MuonDetector) -> None:
        self.detector = detector
        self.acceptance = ClosedFormAcceptance(detector)

    def log_prob(self, x_reco: torch.Tensor, x_hard: torch.Tensor) -> torch.Tensor:
        """log N(x_reco; x_hard, σ(x_hard)) − log ε(x_hard) w.r.t. ∏ dpT dη dφ, shape (n,)."""
        s = self.detector.widths(x_hard)
        r, h = x_reco.view(-1, 2, 3), x_hard.view(-1, 2, 3)
        diff = r - h
        diff[..., 2] = torch.remainder(diff[..., 2] + math.pi, 2 * math.pi) - math.pi
        log_n = (-0.5 * (diff / s) ** 2 - torch.log(s) - 0.5 * math.log(2 * math.pi)).sum((-1, -2))
        return log_n - self.acceptance.log_eps(x_hard)


# %% 3. your events file -> the (n, 6) tensor invsim expects
def write_user_files(x_reco: torch.Tensor, folder: Path) -> tuple[Path, Path]:
    """Play the user's data: pT-ordered leptons with charges, as ROOT and HDF5 files."""
    import h5py
    import uproot

    y = x_reco.view(-1, 2, 3)                           # (ℓ⁻, ℓ⁺)
    charge = torch.tensor([-1, 1]).expand(len(y), 2)
    order = torch.argsort(y[..., 0], dim=1, descending=True)   # leading lepton first
    y = torch.gather(y, 1, order[..., None].expand(-1, -1, 3))
    charge = torch.gather(charge, 1, order)
    cols = {}
    for i in (0, 1):
        for j, v in enumerate(("pt", "eta", "phi")):
            cols[f"lep{i + 1}_{v}"] = y[:, i, j].numpy().astype(np.float32)  # float, as in ntuples
        cols[f"lep{i + 1}_charge"] = charge[:, i].numpy().astype(np.int32)
    root_path, h5_path = folder / "my_events.root", folder / "my_events.h5"
    with uproot.recreate(root_path) as f:
        f["events"] = cols
    with h5py.File(h5_path, "w") as f:
        for k, v in cols.items():
            f.create_dataset(f"events/{k}", data=v)
    return root_path, h5_path


def read_dilepton_file(path: str | Path, tree: str = "events") -> torch.Tensor:
    """Read flat lepton branches from a ROOT or HDF5 file into invsim's reco tensor.

    Args:
        path: ``.root`` (a TTree ``tree``) or ``.h5`` (a group ``tree``) with the branches
            ``lep{1,2}_{pt,eta,phi,charge}`` (pT in GeV, φ in rad).
        tree: tree or group name.

    Returns:
        Tensor (n, 6) float64: (pT, η, φ) of ℓ⁻ then ℓ⁺.

    Raises:
        ValueError: missing branches, or an event without one lepton of each charge.
    """
    path = Path(path)
    if path.suffix == ".root":
        import uproot

        with uproot.open(path) as f:
            cols = f[tree].arrays(BRANCHES, library="np")
    else:
        import h5py

        with h5py.File(path, "r") as f:
            missing = [b for b in BRANCHES if f"{tree}/{b}" not in f]
            if missing:
                raise ValueError(f"path: {path} lacks the datasets {missing} in {tree!r}")
            cols = {b: f[f"{tree}/{b}"][()] for b in BRANCHES}
    t = {k: torch.as_tensor(np.asarray(v)).to(torch.float64) for k, v in cols.items()}
    lep = [torch.stack([t[f"lep{i}_pt"], t[f"lep{i}_eta"], t[f"lep{i}_phi"]], -1) for i in (1, 2)]
    if not bool((t["lep1_charge"] * t["lep2_charge"] < 0).all()):
        raise ValueError(f"path: {path} has events without an opposite-charge lepton pair")
    first_minus = (t["lep1_charge"] < 0)[:, None]
    return torch.cat([torch.where(first_minus, lep[0], lep[1]),
                      torch.where(first_minus, lep[1], lep[0])], -1)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = common.tutorial_parser(__doc__, n_samples=600)
    parser.add_argument("--events", type=int, default=120, help="events in the user's file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the tutorial; returns the numbers written to ``results.json``."""
    args = _parse(argv)
    out = common.output_folder(args.out, prefix="invsim_tutorial04_")
    results: dict = {"truth": TRUTH}
    t_start = time.perf_counter()
    process = common.zprime_process()     # Drell–Yan ℓℓ + Z′, 1500 < m_ℓℓ < 2500 GeV
    detector = MuonDetector()

    # %% play the user's data: events at a hidden Z′ mass through the muon detector
    x_reco = common.accepted_events(process, detector, TRUTH, seed=args.seed + 1)
    root_path, h5_path = write_user_files(x_reco[:args.events], out)
    print(f"user files: {root_path.name}, {h5_path.name}")

    # %% read them back into the (n, 6) tensor
    x_root, x_h5 = read_dilepton_file(root_path), read_dilepton_file(h5_path)
    print(f"read {tuple(x_root.shape)} from ROOT; HDF5 identical: {torch.equal(x_root, x_h5)}")
    print(f"first event (pT, η, φ of ℓ⁻, ℓ⁺): {x_root[0].numpy().round(3)}")
    results["n_events"] = len(x_root)

    # %% train the networks on your detector with the recipe
    model, info = build_dilepton_model(process, detector, n_trials=args.trials,
                                       epochs=args.epochs, seed=args.seed)
    print(f"trained on {info['train_accepted']} accepted of {info['train_events']} events "
          f"in {info['train_seconds']:.0f} s")
    model.save(out / "mem_model", overwrite=True)   # the networks are invsim classes

    # a reco-centred proposal mixed into the unfolder; its widths only need to be
    # roughly those of the detector (any proposal gives an unbiased estimate)
    helper = RecoGaussianProposal(GaussianLeptonDetector(0.08, 0.01, 0.01), process.sqrt_s)
    model.proposal = StratifiedMixtureProposal([model.proposal, helper], [0.5, 0.5])

    # %% your own pieces: the closed-form transfer and acceptance of your detector
    exact = MEMModel(process, model.proposal, ClosedFormTransfer(detector),
                     ClosedFormAcceptance(detector), hard_observables="lepton_pt_eta_phi")
    print(f"own pieces: {exact!r}  (MEMModel.save only stores invsim/forward classes)")

    # %% likelihood and a 1D scan of the Z′ mass (shape only: no luminosity given)
    grid = torch.linspace(1960.0, 2100.0, 29, dtype=torch.float64)
    truth_t = {"mzp": torch.tensor(TRUTH["mzp"], dtype=torch.float64)}
    fig = None
    for label, m in (("learned", model), ("closed form", exact)):
        lik = MEMLikelihood(m, x_root, n_samples=args.n_samples, parameter_names=["mzp"],
                            n_fiducial=40_000, seed=args.seed + 4, on_flagged="ignore")
        with torch.no_grad():
            res = lik.evaluate(truth_t)
        sc = scan(lik, {"mzp": grid})
        m2d = sc.dataset["m2dlogl"].values
        at_true = float(np.interp(TRUTH["mzp"], grid.numpy(), m2d))
        iv = {round(i.cl, 3): (i.lower, i.upper) for i in sc.intervals}
        print(f"{label:>12}: median ESS {float(res.ess.median()):.0f}, flagged "
              f"{int(res.flagged.sum())}; best fit mzp = {sc.best_fit['mzp']:.1f} GeV, "
              f"95 % CL [{iv[0.95][0]:.1f}, {iv[0.95][1]:.1f}], -2Δlog L(truth) = {at_true:.2f}")
        results[label] = {"best_fit": sc.best_fit["mzp"], "m2dlogl_at_truth": at_true,
                          "interval_95": list(iv[0.95]), "median_ess": float(res.ess.median())}
        fig = _overlay(fig, grid.numpy(), m2d, label)
    fig.savefig(out / "scan_own_detector.png", dpi=110)

    common.write_results(results, out, t_start)
    print(f"done in {results['seconds']:.0f} s; files in {out}")
    return results


def _overlay(fig, x, y, label):
    """Add one −2Δlog L curve to a shared figure (created on the first call)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if fig is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.axhline(3.84, color="grey", lw=0.5)
        ax.axvline(TRUTH["mzp"], color="k", ls=":", label="truth")
        ax.set_xlabel("m_Z′ [GeV]")
        ax.set_ylabel("−2Δlog L")
        ax.set_ylim(0, 12)
    ax = fig.axes[0]
    ax.plot(x, y, label=label)
    ax.legend()
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
