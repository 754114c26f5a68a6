r"""Binned lepton resolutions measured on (hard, reco) training pairs.

A detector's resolution depends on where an object is: the card's muons have
σ_pT/pT from 1 % (central, low pT) to 35 % (|η| > 1.5 at a TeV). A reco-centred
proposal with one global width is then too wide for some events and too narrow for
others. :class:`ResolutionTable` measures robust widths (1.4826 × the median absolute
deviation, the σ of a Gaussian, insensitive to tails) of

* log(pT_reco / pT_hard),
* η_reco − η_hard,
* φ_reco − φ_hard (wrapped into (−π, π]),

in bins of the **reco** |η| and log pT (quantile edges of the training leptons, so
every bin is populated), because the proposal knows only the reco event. Bins with
fewer than ``min_count`` pairs take the pooled widths. Every width is floored at
``1e-6``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from forward._validation import as_tensor, check_finite

__all__ = ["ResolutionTable"]

_QUANTITIES = ("log_pt", "eta", "phi")


def _robust_sigma(x: torch.Tensor) -> torch.Tensor:
    """1.4826 × median |x - median(x)| per column of x (n, c), shape (c,)."""
    return 1.4826 * (x - x.median(0).values).abs().median(0).values


def _edges(v: torch.Tensor, bins: int) -> torch.Tensor:
    """Inner quantile edges (bins - 1,) of v, duplicates removed."""
    if bins == 1:
        return v.new_zeros(0)
    q = torch.linspace(0, 1, bins + 1, dtype=v.dtype, device=v.device)[1:-1]
    return torch.unique(torch.quantile(v, q))


class ResolutionTable:
    """Robust lepton resolutions in bins of reco (|η|, log pT); see the module docstring.

    Args:
        eta_edges: inner bin edges in reco |η|, increasing, shape (a,) (a + 1 bins).
        log_pt_edges: inner bin edges in reco log(pT/GeV), increasing, shape (b,).
        widths: σ of (log pT, η, φ) per bin, shape (a + 1, b + 1, 3), all > 0.
    """

    def __init__(self, eta_edges, log_pt_edges, widths) -> None:
        self.eta_edges = as_tensor("eta_edges", eta_edges).to(torch.float64).flatten()
        self.log_pt_edges = as_tensor("log_pt_edges", log_pt_edges).to(torch.float64).flatten()
        self.widths = as_tensor("widths", widths).to(torch.float64)
        for name in ("eta_edges", "log_pt_edges", "widths"):
            check_finite(name, getattr(self, name))
        for name, e in (("eta_edges", self.eta_edges), ("log_pt_edges", self.log_pt_edges)):
            if e.numel() > 1 and not bool((e[1:] > e[:-1]).all()):
                raise ValueError(f"{name}: expected increasing edges, got {e.tolist()}")
        shape = (self.eta_edges.numel() + 1, self.log_pt_edges.numel() + 1, 3)
        if tuple(self.widths.shape) != shape:
            raise ValueError(f"widths: expected shape {shape} (bins in |η|, bins in log pT, "
                             f"3), got {tuple(self.widths.shape)}")
        if not bool((self.widths > 0).all()):
            raise ValueError("widths: expected positive widths")

    @classmethod
    def fit(cls, x_hard, x_reco, *, eta_bins: int = 6, pt_bins: int = 6,
            min_count: int = 200) -> ResolutionTable:
        """Measure the table on lepton pairs.

        Args:
            x_hard: hard (pT [GeV], η, φ) of k leptons, shape (n, 3k).
            x_reco: the reco values of the same leptons in the same order, shape (n, 3k).
            eta_bins, pt_bins: number of quantile bins in reco |η| and log pT (>= 1).
            min_count: pairs a bin needs for its own widths (>= 2); fewer take the
                pooled widths.

        Returns:
            The fitted :class:`ResolutionTable`.
        """
        for name, v, lo in (("eta_bins", eta_bins, 1), ("pt_bins", pt_bins, 1),
                            ("min_count", min_count, 2)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
        h = as_tensor("x_hard", x_hard).to(torch.float64)
        r = as_tensor("x_reco", x_reco).to(torch.float64)
        if h.ndim != 2 or h.shape[1] % 3 or h.shape[1] == 0 or h.shape != r.shape:
            raise ValueError(f"x_hard, x_reco: expected equal shapes (n, 3k), got "
                             f"{tuple(h.shape)} and {tuple(r.shape)}")
        h, r = h.reshape(-1, 3), r.reshape(-1, 3)
        ok = torch.isfinite(h).all(-1) & torch.isfinite(r).all(-1) & (h[:, 0] > 0) & (r[:, 0] > 0)
        h, r = h[ok], r[ok]
        if h.shape[0] < min_count:
            raise ValueError(f"x_hard, x_reco: {h.shape[0]} finite lepton pairs, fewer than "
                             f"min_count={min_count}")
        res = torch.stack([torch.log(r[:, 0] / h[:, 0]), r[:, 1] - h[:, 1],
                           torch.remainder(r[:, 2] - h[:, 2] + math.pi, 2 * math.pi) - math.pi],
                          -1)
        a_eta, lpt = r[:, 1].abs(), torch.log(r[:, 0])
        eta_edges, pt_edges = _edges(a_eta, eta_bins), _edges(lpt, pt_bins)
        pooled = _robust_sigma(res).clamp(min=1e-6)
        i = torch.bucketize(a_eta, eta_edges, right=True)
        j = torch.bucketize(lpt, pt_edges, right=True)
        widths = pooled.expand(eta_edges.numel() + 1, pt_edges.numel() + 1, 3).clone()
        for a in range(widths.shape[0]):
            for b in range(widths.shape[1]):
                sel = (i == a) & (j == b)
                if int(sel.sum()) >= min_count:
                    widths[a, b] = _robust_sigma(res[sel]).clamp(min=1e-6)
        return cls(eta_edges, pt_edges, widths)

    def lookup(self, x_reco) -> torch.Tensor:
        """Widths of every lepton of reco events.

        Args:
            x_reco: reco (pT [GeV], η, φ) of k leptons, shape (m, 3k).

        Returns:
            σ of (log pT, η, φ) per lepton, shape (m, k, 3), float64.
        """
        x = as_tensor("x_reco", x_reco).to(torch.float64)
        if x.ndim != 2 or x.shape[1] % 3 or x.shape[1] == 0:
            raise ValueError(f"x_reco: expected shape (m, 3k), got {tuple(x.shape)}")
        y = x.reshape(x.shape[0], -1, 3)
        w = self.widths.to(y.device)
        i = torch.bucketize(y[..., 1].abs(), self.eta_edges.to(y.device), right=True)
        j = torch.bucketize(torch.log(y[..., 0].clamp(min=1e-300)), self.log_pt_edges.to(y.device),
                            right=True)
        return w[i, j]

    @property
    def pooled(self) -> dict[str, float]:
        """The median width of each quantity over the bins (a summary for logs)."""
        med = self.widths.reshape(-1, 3).median(0).values
        return {"sigma_" + q: float(v) for q, v in zip(_QUANTITIES, med, strict=True)}

    def to_dict(self) -> dict:
        """JSON-ready content (lists of floats)."""
        return {"eta_edges": self.eta_edges.tolist(), "log_pt_edges": self.log_pt_edges.tolist(),
                "widths": self.widths.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> ResolutionTable:
        """Inverse of :meth:`to_dict`."""
        missing = sorted({"eta_edges", "log_pt_edges", "widths"} - set(data))
        if missing:
            raise ValueError(f"resolution table: missing {missing}")
        return cls(torch.tensor(data["eta_edges"], dtype=torch.float64),
                   torch.tensor(data["log_pt_edges"], dtype=torch.float64),
                   torch.tensor(data["widths"], dtype=torch.float64))

    def __repr__(self) -> str:
        return (f"ResolutionTable({self.eta_edges.numel() + 1} |η| x "
                f"{self.log_pt_edges.numel() + 1} log pT bins, median widths {self.pooled})")
