r"""Top-mass observables of t t̄ → dilepton events, at reco and at hard level.

* :func:`mbl_minmax`: the reco-level m(bℓ) of the b-jet–lepton pairing with the smaller
  maximum. The two leading b-jets and the two leptons of
  :class:`~invsim.observables.RecoObservables` columns (``lminus_*``, ``lplus_*``,
  ``bjet1_*``, ``bjet2_*``, each (pT [GeV], η, φ)) are taken massless; of the pairings
  (b₁ℓ⁻, b₂ℓ⁺) and (b₁ℓ⁺, b₂ℓ⁻) the one whose larger m(bℓ) is smaller is chosen (the
  b-tag does not tell b from b̄; the true pairing has both m(bℓ) below the endpoint
  √(m_t² − m_W²) ≈ 153 GeV). Per event: the two m(bℓ) of that pairing.
  :func:`mbl_statistic` (their mean) is the per-event statistic of the top-mass
  :class:`~invsim.unfold_prior.DatasetSummary`: its median rises by about 0.5 GeV per
  GeV of m_t.
* :func:`top_masses`: the hard-level masses m(b ℓ⁺ ν) and m(b̄ ℓ⁻ ν̄) of the final state
  (b, ℓ⁺, ν, b̄, ℓ⁻, ν̄) of ``TTbar(decays="dilepton")`` (the order of its
  ``final_state``), i.e. the two top line shapes; unfolded events give their unfolded
  distribution, whose peak :func:`invsim.peak_fit.fit_peak` locates.
"""

from __future__ import annotations

import torch

from forward import kinematics as kin
from forward._validation import as_tensor
from forward.events import HardEvents
from invsim.observables import RecoObservables

__all__ = ["mbl_minmax", "mbl_statistic", "top_masses"]

_STEMS = ("lminus", "lplus", "bjet1", "bjet2")


def _massless(pt, eta, phi) -> torch.Tensor:
    return torch.stack([pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi),
                        pt * torch.sinh(eta)], -1)


def mbl_minmax(x_reco, observables: RecoObservables) -> torch.Tensor:
    """m(bℓ) of the pairing with the smaller maximum (module docstring).

    Args:
        x_reco: reco observables in the column order of ``observables``, shape (m, d).
        observables: the analysis observables; must have two leptons and at least two
            b-jets.

    Returns:
        float64 tensor of shape (m, 2) in GeV: the two m(bℓ) of the chosen pairing,
        (with ℓ⁻, with ℓ⁺).
    """
    if not isinstance(observables, RecoObservables):
        raise TypeError(f"observables: expected a RecoObservables, got "
                        f"{type(observables).__name__}")
    if observables.leptons != 2 or observables.bjets < 2:
        raise ValueError(f"observables: expected 2 leptons and at least 2 b-jets, got "
                         f"leptons={observables.leptons}, bjets={observables.bjets}")
    x = as_tensor("x_reco", x_reco, dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != observables.dim:
        raise ValueError(f"x_reco: expected shape (m, {observables.dim}) for columns "
                         f"{observables.columns}, got {tuple(x.shape)}")
    col = {c: i for i, c in enumerate(observables.columns)}
    p = {s: _massless(x[:, col[f"{s}_pt"]], x[:, col[f"{s}_eta"]], x[:, col[f"{s}_phi"]])
         for s in _STEMS}
    a = torch.stack([kin.mass(p["bjet1"] + p["lminus"]), kin.mass(p["bjet2"] + p["lplus"])], -1)
    b = torch.stack([kin.mass(p["bjet2"] + p["lminus"]), kin.mass(p["bjet1"] + p["lplus"])], -1)
    first = a.max(-1).values <= b.max(-1).values
    return torch.where(first[:, None], a, b)


def mbl_statistic(observables: RecoObservables):
    """The per-event statistic x_reco -> mean of the two :func:`mbl_minmax` masses, (m,)."""
    def statistic(x_reco) -> torch.Tensor:
        return mbl_minmax(x_reco, observables).mean(-1)

    mbl_minmax(torch.zeros(1, observables.dim), observables)  # checks the observables
    return statistic


def top_masses(events: HardEvents) -> torch.Tensor:
    """m(b ℓ⁺ ν) and m(b̄ ℓ⁻ ν̄) of dilepton t t̄ hard events, shape (n, 2) in GeV.

    Args:
        events: hard events with momenta (n, 6, 4) in the order (b, ℓ⁺, ν, b̄, ℓ⁻, ν̄).
    """
    if not isinstance(events, HardEvents):
        raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
    p = events.momenta
    if p.shape[1] != 6:
        raise ValueError(f"events: expected momenta of shape (n, 6, 4) (b, ℓ⁺, ν, b̄, ℓ⁻, ν̄), "
                         f"got {tuple(p.shape)}")
    return torch.stack([kin.mass(p[:, 0:3].sum(1)), kin.mass(p[:, 3:6].sum(1))], -1)
