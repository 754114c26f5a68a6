"""Tutorial 4: invsim inside your own analysis — your events file, your detector.

What you learn:

1. bring your own reconstructed events: a NanoAOD-style ROOT (uproot) or HDF5 (h5py)
   ntuple with the usual branches ``nMuon, Muon_pt, Muon_eta, Muon_phi, Muon_charge,
   MET_pt, MET_phi`` (here the tutorial first writes such files itself, from plain
   arrays and with ℓ⁺ listed first in every other event, to play your data), read by
   :func:`forward.io.read_events`;
2. describe the analysis by its observables (:class:`invsim.observables.RecoObservables`:
   two opposite-sign muons, pT > 100 GeV), which put every file in one canonical order
   (ℓ⁻ then ℓ⁺), whatever order the file lists them in;
3. describe your detector as a card: a dict overlaid on the CMS-like default card
   (here a muon system with 1 % ⊕ 4·10⁻⁵ pT resolution and 10 mrad angles), which
   follows the detector protocol of :mod:`forward.detector` like any other detector;
4. train the ML-MEM networks on it with :func:`invsim.mem.recipe.build_model` over a
   Z′ mass range, save the model directory, and bind it to your file with
   :func:`invsim.data.model_likelihood` (exactly what ``invsim train`` and ``invsim scan
   --model --data`` do);
5. check the learned pieces against the card's exact lepton response
   (:class:`invsim.exact.ExactTransfer`, :class:`invsim.exact.ExactAcceptance`): the
   same scan with the closed form in place of the networks.

    python3 tutorials/04_own_analysis.py            # writes into a temp folder
    python3 tutorials/04_own_analysis.py out/ --trials 300000

The same from the command line::

    invsim train drell-yan --set leptons=mumu --set mll_min=1500 --set mll_max=2500 \\
        --detector my_card.json --cut lepton_pt_min=100 --param mzp=1950:2110 -o model
    invsim scan --model model --data my_events.root --param mzp=1960:2100:29 -o scan
"""

# %% imports and settings
from __future__ import annotations

import json
import time
from pathlib import Path

# tutorials/_common.py: the Z′ process, options and results of tutorials 2–4
import _common as common
import numpy as np
import torch

from forward.detector import Detector
from forward.io import read_events
from forward.processes import get_process
from invsim.data import model_likelihood
from invsim.exact import ExactAcceptance, ExactTransfer
from invsim.mem import MEMModel
from invsim.mem.recipe import build_model
from invsim.observables import RecoObservables
from invsim.pairs import simulate
from invsim.scan import scan

__all__ = ["MY_CARD", "main", "write_nanoaod_files"]

TRUTH = {"mzp": 2030.0}
RANGE = (1950.0, 2110.0)

#: your detector: overrides of the default (CMS-like) card, as in a JSON/YAML card file
MY_CARD = {
    "name": "my-muon-system",
    "muon": {
        "resolution": {"variable": "pt", "eta_max": [2.4], "stochastic": [0.0],
                       "noise": [0.0], "constant": [0.01], "linear": [4e-5]},
        "efficiency": {"eta_edges": [0.0, 2.4], "pt_edges": [10.0, "inf"],
                       "values": [[0.97]]},
        "eta_max": 2.4, "sigma_eta": 0.01, "sigma_phi": 0.01,
    },
}


# %% 1. play your data: NanoAOD-style files written from plain arrays
def write_nanoaod_files(x_reco: np.ndarray, folder: Path) -> tuple[Path, Path]:
    """Write (pT, η, φ) of ℓ⁻, ℓ⁺ per event, shape (n, 6), as NanoAOD-style muons.

    Every other event lists ℓ⁺ first (files do not promise invsim's order). The ROOT
    file is a TTree with counter branch ``nMuon``; the HDF5 file holds ``nMuon`` and
    flat ``Muon_*`` datasets in a group ``Events``.
    """
    import awkward as ak
    import h5py
    import uproot

    n = len(x_reco)
    swap = (np.arange(n) % 2 == 1)[:, None]
    first = np.where(swap, x_reco[:, 3:6], x_reco[:, 0:3]).astype(np.float32)
    second = np.where(swap, x_reco[:, 0:3], x_reco[:, 3:6]).astype(np.float32)
    charge = np.where(swap[:, 0], 1, -1).astype(np.int32)
    cols = {"pt": 0, "eta": 1, "phi": 2}
    flat = {f"Muon_{k}": np.stack([first[:, j], second[:, j]], 1) for k, j in cols.items()}
    flat["Muon_charge"] = np.stack([charge, -charge], 1)
    met = {"MET_pt": np.zeros(n, np.float32), "MET_phi": np.zeros(n, np.float32)}
    root_path, h5_path = folder / "my_events.root", folder / "my_events.h5"
    with uproot.recreate(root_path) as f:
        types = {"nMuon": "int32", **{k: f"var * {v.dtype.name}" for k, v in flat.items()},
                 "MET_pt": "float32", "MET_phi": "float32"}
        f.mktree("Events", types, counter_name=lambda c: "n" + c.partition("_")[0])
        f["Events"].extend({"nMuon": np.full(n, 2, np.int32),
                            **{k: ak.Array(v.tolist()) for k, v in flat.items()}, **met})
    with h5py.File(h5_path, "w") as f:
        f["Events/nMuon"] = np.full(n, 2, np.int32)
        for k, v in {**flat, **met}.items():
            f[f"Events/{k}"] = v.reshape(-1)
    return root_path, h5_path


def main(argv: list[str] | None = None) -> dict:
    """Run the tutorial; returns the numbers written to ``results.json``."""
    parser = common.tutorial_parser(__doc__, n_samples=600)
    parser.add_argument("--events", type=int, default=120, help="events in the user's file")
    args = parser.parse_args(argv)
    out = common.output_folder(args.out, prefix="invsim_tutorial04_")
    results: dict = {"truth": TRUTH}
    t_start = time.perf_counter()
    process = get_process("drell-yan", leptons="mumu", **common.WINDOW)
    detector = Detector(MY_CARD)                    # your card, on top of the default
    observables = RecoObservables(leptons=2, lepton_pt_min=100.0)

    # %% play the user's data: events at a hidden Z′ mass through your detector
    sim = simulate(process, detector, 40_000, TRUTH, observables=observables,
                   seed=args.seed + 1)
    x_true = sim.x_reco[sim.passed][: args.events]
    root_path, h5_path = write_nanoaod_files(x_true.numpy(), out)
    print(f"user files: {root_path.name}, {h5_path.name}")

    # %% 2. read them: the same tensor from both files, in the canonical order
    reco_root, reco_h5 = read_events(root_path), read_events(h5_path)
    x_root = observables.extract(reco_root).x
    x_h5 = observables.extract(reco_h5).x
    print(f"read {tuple(x_root.shape)} from ROOT; HDF5 identical: {torch.equal(x_root, x_h5)}")
    print(f"columns: {observables.columns}")
    print(f"first event: {x_root[0].numpy().round(3)}  (ℓ⁻ first, as in the simulation: "
          f"{bool(torch.allclose(x_root, x_true.float().double()))})")
    results["n_events"] = len(x_root)

    # %% 3-4. train on your detector over a mass range, save, bind to your file
    model, info = build_model(process, detector, observables=observables,
                              n_trials=args.trials, epochs=args.epochs, seed=args.seed,
                              ranges={"mzp": RANGE}, points_per_axis=2, min_accepted=0)
    print(f"trained on {info['train_accepted']} accepted of {info['train_events']} events "
          f"in {info['train_seconds']:.0f} s; the proposal's helper uses the measured "
          f"resolutions {info['reco_helper_resolutions']}")
    model.save(out / "mem_model", overwrite=True)
    print(f"model directory: {sorted(p.name for p in (out / 'mem_model').iterdir())}")
    print(f"its description: {json.loads((out / 'mem_model' / 'mem.json').read_text())['ranges']}")

    # %% 5. the card's exact lepton response in place of the networks
    flavours = [((13, -13), 1.0)]
    exact = MEMModel(process, model.proposal,
                     ExactTransfer(detector, 2, flavours, pt_min=100.0),
                     ExactAcceptance(detector, 2, flavours, pt_min=100.0),
                     hard_observables="pt_eta_phi", params=model.params,
                     observables=observables, ranges=model.ranges)

    # %% likelihood and a 1D scan of the Z′ mass (shape only: no luminosity given)
    grid = torch.linspace(1960.0, 2100.0, 29, dtype=torch.float64)
    fig = None
    for label, m in (("learned", out / "mem_model"), ("closed form", exact)):
        lik, observed = model_likelihood(m, root_path, n_samples=args.n_samples,
                                         n_fiducial=40_000, seed=args.seed + 4,
                                         on_flagged="ignore")
        with torch.no_grad():
            res = lik.evaluate({"mzp": torch.tensor(TRUTH["mzp"], dtype=torch.float64)})
        sc = scan(lik, {"mzp": grid}, on_flagged="ignore")
        m2d = sc.dataset["m2dlogl"].values
        at_true = float(np.interp(TRUTH["mzp"], grid.numpy(), m2d))
        iv = {round(i.cl, 3): (i.lower, i.upper) for i in sc.intervals}
        print(f"{label:>12}: {observed.summary()}")
        print(f"{'':>12}  median ESS {float(res.ess.median()):.0f}, flagged "
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
