"""A detector's exact transfer and acceptance, with the interfaces of the learned networks.

Where a detector has a closed form for its lepton response
(:mod:`forward.detector.closed_form`), :class:`ExactTransfer` (``log_prob(x_reco,
x_hard)``) and :class:`ExactAcceptance` (``logits(x_hard)``) put it in place of the
networks of a :class:`~invsim.mem.MEMModel`: the reference for validating the learned
pieces, and the transfer of the brute-force MEM (:mod:`invsim.bruteforce`). Both save
and load like the networks (the detector is stored by its description,
:func:`forward.detector.describe_detector`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from forward.detector import describe_detector, detector_from_description, get_detector
from invsim.flows.training import read_file, write_file

__all__ = ["ExactAcceptance", "ExactTransfer"]


class _Exact:
    """Holds the detector and the closed form's arguments; saves and loads them."""

    def __init__(self, detector, n_leptons: int = 2,
                 flavours: Sequence[tuple[Sequence[int], float]] | None = None, *,
                 pt_min: float = 0.0, eta_max: float = math.inf) -> None:
        detector = get_detector(detector)
        if not callable(getattr(detector, "closed_form", None)):
            raise TypeError(f"detector: {type(detector).__name__} has no closed_form(); an "
                            "exact transfer needs a detector with a closed form")
        if isinstance(n_leptons, bool) or not isinstance(n_leptons, int) or n_leptons < 1:
            raise ValueError(f"n_leptons: expected an integer >= 1, got {n_leptons!r}")
        self.detector = detector
        self.n_leptons = n_leptons
        self.flavours = None if flavours is None else [
            (tuple(int(i) for i in ids), float(s)) for ids, s in flavours]
        self.pt_min, self.eta_max = float(pt_min), float(eta_max)
        self.closed_form = detector.closed_form(n_leptons, self.flavours, pt_min=self.pt_min,
                                                eta_max=self.eta_max)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the detector description and the closed form's arguments."""
        write_file(path, {"kind": f"exact-{type(self).__name__}",
                          "detector": describe_detector(self.detector),
                          "n_leptons": self.n_leptons,
                          "flavours": None if self.flavours is None else
                          [[list(ids), s] for ids, s in self.flavours],
                          "pt_min": self.pt_min, "eta_max": self.eta_max},
                   overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None):
        """Load what :meth:`save` wrote (also files of invsim 0.1, which held only the
        Gaussian detector's settings)."""
        d = read_file(path, f"exact-{cls.__name__}", map_location=map_location)
        desc = d["detector"]
        if "kind" not in desc:  # invsim 0.1: GaussianLeptonDetector settings
            desc = {"kind": "gaussian-lepton", "settings": desc}
        return cls(detector_from_description(desc), d.get("n_leptons", 2), d.get("flavours"),
                   pt_min=d.get("pt_min", 0.0), eta_max=d.get("eta_max", math.inf))


class ExactTransfer(_Exact):
    """The detector's exact r(x_reco | x_hard) on lepton observables.

    Args:
        detector: a detector with ``closed_form`` (or anything
            :func:`forward.detector.get_detector` accepts).
        n_leptons: leptons per event; observables (n, 3 n_leptons) as (pT, η, φ).
        flavours: (ids, share) per lepton-flavour assignment (see
            :meth:`forward.detector.Detector.closed_form`); None for the detector's default.
        pt_min, eta_max: the analysis's lepton cuts on top of the detector's.
    """

    def log_prob(self, x_reco, x_hard) -> torch.Tensor:
        """log r, shape (n,), for paired x_reco and x_hard (n, 3 n_leptons)."""
        return self.closed_form.log_transfer(x_reco, x_hard)


class ExactAcceptance(_Exact):
    """The detector's exact ε(x_hard) on lepton observables (arguments as
    :class:`ExactTransfer`)."""

    def logits(self, x_hard) -> torch.Tensor:
        """logit ε, shape (n,), for x_hard (n, 3 n_leptons)."""
        le = self.closed_form.log_acceptance(x_hard)
        return le - torch.log(-torch.expm1(le.clamp(max=-1e-16)))

    def __call__(self, x_hard) -> torch.Tensor:
        """ε, shape (n,)."""
        return torch.exp(self.closed_form.log_acceptance(x_hard))
