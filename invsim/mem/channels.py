r"""Several analysis channels (e.g. ee and μμ) as one likelihood of all their events.

Detectors measure electrons and muons differently (the card's muons: 1 mrad angles and
a pT resolution growing to tens of per cent at a TeV; its electrons: 5 mrad angles
and sub-per-cent energies), so one transfer function for both flavours has to learn
a mixture that the reco event resolves anyway. An analysis therefore splits its events
into channels c of one flavour content each (:attr:`RecoObservables.electrons
<invsim.observables.RecoObservables>`), trains one model per channel (a process with
that flavour content, e.g. ``drell-yan`` with ``leptons="ee"``) and combines them:

.. math:: p(x, c \mid \theta) = \frac{\sigma_c(\theta)}{\sum_{c'} \sigma_{c'}(\theta)}\,
          p_c(x \mid \theta), \qquad \sigma_\text{fid}(\theta) = \sum_c \sigma_c(\theta),

with p_c and σ_c = σ_fid of channel c's likelihood. The extended likelihood in the
total number of events then equals the product of the channels' own extended
likelihoods. :class:`ChannelLikelihood` is an ``EventLikelihood`` (scans, NUTS).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from invsim.mem.estimator import MEMResult

__all__ = ["ChannelLikelihood"]


class ChannelLikelihood:
    """The likelihood of the events of several channels, each with its own likelihood.

    Args:
        channels: name -> likelihood of that channel's events (e.g.
            :class:`~invsim.mem.MEMLikelihood` or
            :class:`~invsim.mem.PartonLikelihood`), each with ``parameter_names``,
            ``log_prob_and_log_sigma_fid(theta)`` and ``n_events``; :meth:`evaluate`
            needs every channel's ``evaluate`` (else it is None). All must have the
            same ``parameter_names`` (in any order); at least one channel.

    Attributes:
        parameter_names: the channels' common θ names (those of the first channel).
        names: channel names, in the order their events are concatenated.
        n_events: total number of events.
        slices: name -> slice of that channel's events in the concatenated axis.
    """

    def __init__(self, channels: Mapping[str, object]) -> None:
        if not isinstance(channels, Mapping):
            raise TypeError("channels: expected a mapping name -> likelihood, got "
                            f"{type(channels).__name__}")
        if not channels:
            raise ValueError("channels: expected at least one channel, got none")
        first = None
        for name, lik in channels.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"channels: names must be non-empty strings, got {name!r}")
            for attr in ("parameter_names", "log_prob_and_log_sigma_fid", "n_events"):
                if not hasattr(lik, attr):
                    raise TypeError(f"channels[{name!r}]: expected a likelihood with {attr}, "
                                    f"got {type(lik).__name__}")
            names = tuple(lik.parameter_names)
            if first is None:
                first = names
            elif set(names) != set(first) or len(names) != len(first):
                raise ValueError(f"channels[{name!r}]: parameter_names {list(names)} differ "
                                 f"from the first channel's {list(first)}")
        self.channels = dict(channels)
        self.names = tuple(self.channels)
        self.parameter_names = first
        self.slices, start = {}, 0
        for name, lik in self.channels.items():
            self.slices[name] = slice(start, start + int(lik.n_events))
            start += int(lik.n_events)
        self.n_events = start
        if not all(callable(getattr(lik, "evaluate", None)) for lik in self.channels.values()):
            # a channel without diagnostics: none for the sum (scans and posteriors
            # look evaluate up with getattr and treat None as absent)
            self.evaluate = None

    @property
    def parameters(self) -> dict:
        """Declared ranges of θ: per name, the intersection of the channels' ranges."""
        out: dict = {}
        for lik in self.channels.values():
            for name, par in dict(getattr(lik, "parameters", {}) or {}).items():
                if name in out:
                    lo, hi = max(out[name].low, par.low), min(out[name].high, par.high)
                    if not lo < hi:
                        raise ValueError(f"channels: the ranges of {name} do not overlap")
                    par = dataclasses.replace(out[name], low=lo, high=hi,
                                              default=min(max(out[name].default, lo), hi))
                out[name] = par
        return out

    @property
    def process(self):
        """The first channel's process (for names and defaults of θ)."""
        return getattr(self.channels[self.names[0]], "process", None)

    def log_prob_and_log_sigma_fid(self, theta) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(x, c | θ) of every event and log(σ_fid(θ)/pb) summed over channels.

        Args:
            theta: name -> tensor of shape () or (b,), as for each channel.

        Returns:
            (log p of shape (n_events,) or (b, n_events), events in channel order;
            log σ_fid of shape () or (b,)), float64, differentiable in θ.
        """
        lps, lsfs = [], []
        for lik in self.channels.values():
            lp, lsf = lik.log_prob_and_log_sigma_fid(theta)
            lps.append(lp)
            lsfs.append(lsf)
        total = torch.logsumexp(torch.stack(lsfs), 0)
        out = [lp + (lsf - total).unsqueeze(-1) for lp, lsf in zip(lps, lsfs, strict=True)]
        return torch.cat(out, -1), total

    def log_prob(self, theta) -> torch.Tensor:
        """log p(x, c | θ), shape (n_events,) or (b, n_events); see the module docstring."""
        return self.log_prob_and_log_sigma_fid(theta)[0]

    def log_sigma_fid(self, theta) -> torch.Tensor:
        """log(Σ_c σ_c(θ) / pb), shape () or (b,)."""
        return self.log_prob_and_log_sigma_fid(theta)[1]

    def evaluate(self, theta) -> MEMResult:
        """Every channel's :class:`~invsim.mem.MEMResult`, combined.

        Per-event columns are concatenated in channel order with log p as in
        :meth:`log_prob`; ``log_sigma_fid`` is the total and ``sigma_fid_error`` its
        relative error from the channels' independent samples. ``n_samples`` is the
        smallest of the channels'; a flag reason missing in a channel counts as False
        there.
        """
        res = [lik.evaluate(theta) for lik in self.channels.values()]
        lsf = torch.stack([r.log_sigma_fid for r in res])
        total = torch.logsumexp(lsf, 0)
        share = torch.exp(lsf - total)  # σ_c / σ
        rel = torch.sqrt((torch.stack([r.sigma_fid_error for r in res]) * share).pow(2).sum(0))

        def cat(field: str) -> torch.Tensor:
            return torch.cat([getattr(r, field) for r in res], -1)

        log_p = torch.cat([r.log_p + (ls - total).unsqueeze(-1)
                           for r, ls in zip(res, lsf, strict=True)], -1)
        keys = list(dict.fromkeys(k for r in res for k in r.flag_reasons))
        reasons = {k: torch.cat([r.flag_reasons.get(k, torch.zeros_like(r.flagged))
                                 for r in res], -1) for k in keys}
        return MEMResult(log_p, cat("error"), cat("ess"), cat("pareto_k"), cat("flagged"),
                         total, rel, min(int(r.n_samples) for r in res), reasons)

    def channel_of(self, index: int) -> str:
        """The channel name of event ``index`` (0-based, concatenated order)."""
        if isinstance(index, bool) or not isinstance(index, int) or not (
                0 <= index < self.n_events):
            raise ValueError(f"index: expected an integer in [0, {self.n_events}), got {index!r}")
        for name, sl in self.slices.items():
            if sl.start <= index < sl.stop:
                return name
        raise AssertionError("unreachable")  # pragma: no cover - slices cover all

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {sl.stop - sl.start}" for k, sl in self.slices.items())
        return f"ChannelLikelihood({{{parts}}}, parameters={self.parameter_names})"
