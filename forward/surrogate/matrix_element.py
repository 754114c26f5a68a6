r"""A trained amplitude surrogate as a drop-in |M|², with uncertainties, save and load.

**Flavour channels.** The columns of ``Process.matrix_element`` are grouped by exact
proportionality on the training data (:func:`channel_groups`): columns whose ratio to
a group's reference column is the same constant at every point (to ``rtol``) share one
regressed function, and the constant (e.g. a charge factor :math:`e_q^4`) is kept
exactly. Columns that vanish everywhere stay zero. Each group is one output of the
network, so |M|² per channel is

.. math:: |M|^2_c(x) = \rho_c \exp\big(\mu_{g(c)}(x) + \log R(x)\big),
          \qquad \sigma_c(x) = |M|^2_c(x)\, \sigma_{g(c)}(x),

with μ, σ the predictive mean and width of :math:`y = \log|M|^2 - \log R` and σ
propagated to first order from log space. The surrogate is trained at fixed process
parameters; asking for others raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from forward._validation import check_choice
from forward.events import HardEvents
from forward.processes.base import Process
from forward.surrogate.features import REFERENCES, canonical_order, log_reference
from forward.surrogate.models import SymmetricRegressor

__all__ = ["SurrogateMatrixElement", "SurrogateProcess", "channel_groups"]

_FORMAT = "invsim-surrogate"
_VERSION = 1


def channel_groups(me2: torch.Tensor, rtol: float = 1e-9) -> tuple[list[int], list[int], list]:
    """Group the flavour channels whose |M|² are exactly proportional.

    Args:
        me2: |M|² per channel on a sample, shape (n, n_channels), n >= 1.
        rtol: allowed relative spread of a ratio to count as constant.

    Returns:
        (group, reference, ratio): ``group[c]`` is the group of column c (-1 for
        columns that vanish everywhere), ``reference[g]`` the column regressed for
        group g, ``ratio[c]`` the constant |M|²_c / |M|²_reference (0.0 for -1).
    """
    if not isinstance(me2, torch.Tensor) or me2.ndim != 2 or me2.shape[0] < 1:
        got = tuple(me2.shape) if isinstance(me2, torch.Tensor) else type(me2).__name__
        raise ValueError(f"me2: expected shape (n, n_channels) with n >= 1, got {got}")
    me2 = me2.to(torch.float64)
    group, reference, ratio = [], [], []
    for c in range(me2.shape[1]):
        col = me2[:, c]
        nz = col != 0
        if not bool(nz.any()):
            group.append(-1)
            ratio.append(0.0)
            continue
        for g, ref in enumerate(reference):
            ref_col = me2[:, ref]
            if not torch.equal(nz, ref_col != 0):
                continue
            q = col[nz] / ref_col[nz]
            if bool((q.max() - q.min()).abs() <= rtol * q.abs().max()):
                group.append(g)
                ratio.append(float(q.mean()))
                break
        else:
            group.append(len(reference))
            reference.append(c)
            ratio.append(1.0)
    return group, reference, ratio


class SurrogateMatrixElement:
    """Learned |M|² per flavour channel, usable wherever ``Process.matrix_element`` is.

    Args:
        regressor: a trained :class:`~forward.surrogate.models.SymmetricRegressor`.
        groups, references, ratios: from :func:`channel_groups`.
        reference: the known factor R divided out (``"eikonal"``, ``"dimension"``,
            ``"none"``).
        final_state: PDG ids of the final state.
        flavour_channels: the process's flavour channels.
        params: the parameter values the surrogate was trained at (name -> float).
        process_name: registry name of the process.
        samples: weight draws per prediction for Bayesian nets.
        seed: seed of those draws (fixed, so the surrogate is a deterministic function).
    """

    def __init__(
        self,
        regressor: SymmetricRegressor,
        *,
        groups: list[int],
        references: list[int],
        ratios: list[float],
        reference: str,
        final_state: tuple[int, ...],
        flavour_channels: tuple[tuple[int, int], ...],
        params: Mapping[str, float],
        process_name: str = "",
        samples: int = 10,
        seed: int = 0,
    ) -> None:
        if not isinstance(regressor, SymmetricRegressor):
            raise TypeError(
                f"regressor: expected a SymmetricRegressor, got {type(regressor).__name__}")
        check_choice("reference", reference, REFERENCES)
        if len(groups) != len(flavour_channels) or len(ratios) != len(groups):
            raise ValueError(
                f"groups: expected one entry per flavour channel ({len(flavour_channels)}), "
                f"got {len(groups)} groups and {len(ratios)} ratios"
            )
        if len(references) != regressor.n_groups:
            raise ValueError(
                f"references: expected {regressor.n_groups} (the regressor's outputs), "
                f"got {len(references)}"
            )
        self.regressor = regressor
        self.groups = [int(g) for g in groups]
        self.references = [int(c) for c in references]
        self.ratios = [float(r) for r in ratios]
        self.reference = reference
        self.final_state = tuple(int(p) for p in final_state)
        self.flavour_channels = tuple(tuple(int(a) for a in ch) for ch in flavour_channels)
        self.params = {k: float(v) for k, v in params.items()}
        self.process_name = process_name
        self.samples = int(samples)
        self.seed = int(seed)

    # -- checks ----------------------------------------------------------------------
    def check_params(self, params: Mapping[str, Any] | None) -> None:
        """Raise ``ValueError`` unless ``params`` equal the training values (or are None)."""
        if params is None:
            return
        for name, value in params.items():
            if name not in self.params:
                raise ValueError(
                    f"params: unknown parameter {name!r}; the surrogate knows "
                    f"{sorted(self.params)}"
                )
            t = torch.as_tensor(value).detach().to(torch.float64)
            ref = self.params[name]
            if not bool(((t - ref).abs() <= 1e-9 * max(1.0, abs(ref))).all()):
                raise ValueError(
                    f"params: the surrogate was trained at {name}={ref:g}; got "
                    f"{t.reshape(-1)[:3].tolist()} (retrain for other parameter values)"
                )

    def _check_events(self, events: HardEvents) -> None:
        if not isinstance(events, HardEvents):
            raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
        k = len(self.final_state)
        if events.momenta.ndim != 3 or events.momenta.shape[1:] != (k, 4):
            raise ValueError(
                f"events: expected momenta of shape (n, {k}, 4) for final state "
                f"{self.final_state}, got {tuple(events.momenta.shape)}"
            )

    # -- prediction ------------------------------------------------------------------
    def log_predict(
        self, events: HardEvents, *, samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted log|M|² of each group's reference channel and its σ in log space.

        Args:
            events: hard events, momenta (n, k, 4) in GeV.
            samples: weight draws for Bayesian nets (default ``self.samples``).
            generator: generator of those draws; default one seeded with ``self.seed``.

        Returns:
            (log_me2, sigma), each float64 of shape (n, n_groups).
        """
        self._check_events(events)
        if self.regressor.symmetry == "sort":
            # the known factor too from the canonical order, so that the prediction is
            # bit-for-bit symmetric (R is symmetric, its floating-point sums are not)
            events = canonical_order(events, self.regressor.final_state)
        samples = self.samples if samples is None else int(samples)
        if generator is None:
            generator = torch.Generator(self.regressor.device).manual_seed(self.seed)
        with torch.no_grad():
            mean, var = self.regressor.predict(events, samples=samples, generator=generator)
        log_r = log_reference(events, self.reference).to(torch.float64).to(mean.device)
        return mean + log_r.unsqueeze(-1), var.sqrt()

    def predict(
        self,
        events: HardEvents,
        params: Mapping[str, Any] | None = None,
        *,
        samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """|M|² per channel and its uncertainty.

        Args:
            events: hard events, momenta (n, k, 4) in GeV.
            params: must equal the training parameters (or be None).
            samples, generator: as in :meth:`log_predict`.

        Returns:
            (me2, sigma): each float64 of shape (n, n_channels), in the units of the
            process's |M|²; σ = |M|² · σ_log (first order from log space).
        """
        self.check_params(params)
        log_me2, sig = self.log_predict(events, samples=samples, generator=generator)
        n = log_me2.shape[0]
        me2 = torch.zeros(n, len(self.groups), dtype=torch.float64, device=log_me2.device)
        sigma = torch.zeros_like(me2)
        for c, (g, rho) in enumerate(zip(self.groups, self.ratios, strict=True)):
            if g < 0:
                continue
            me2[:, c] = rho * torch.exp(log_me2[:, g])
            sigma[:, c] = me2[:, c].abs() * sig[:, g]
        return me2, sigma

    def matrix_element(
        self, events: HardEvents, params: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        """Same signature as ``Process.matrix_element``: |M|² of shape (n, n_channels).

        Returned in the dtype of the momenta, on the networks' device.
        """
        return self.predict(events, params)[0].to(events.momenta.dtype)

    __call__ = matrix_element

    def as_process(self, process: Process) -> SurrogateProcess:
        """The process ``process`` with this surrogate as its matrix element."""
        return SurrogateProcess(process, self)

    # -- persistence -----------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to rebuild the surrogate (plain types and tensors)."""
        reg = self.regressor
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "regressor": {
                "n_out": reg.n_out, "permutations": reg.permutations, "n_groups": reg.n_groups,
                "kind": reg.kind, "dtype": str(reg.dtype).replace("torch.", ""),
                **reg.config,
            },
            "state_dict": {k: v.detach().cpu() for k, v in reg.state_dict().items()},
            "groups": self.groups, "references": self.references, "ratios": self.ratios,
            "reference": self.reference, "final_state": self.final_state,
            "flavour_channels": self.flavour_channels, "params": self.params,
            "process_name": self.process_name, "samples": self.samples, "seed": self.seed,
        }

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the surrogate to ``path`` (a torch file), atomically, with its
        :func:`forward.provenance.provenance` record (JSON text under ``"provenance"``).

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is false.
        """
        import json

        from forward.files import atomic_target
        from forward.provenance import provenance

        state = self.state()  # the record as JSON text: plain for weights_only loading
        state["provenance"] = json.dumps(provenance(
            process=self.process_name, parameters=self.params, seed=self.seed))
        path = Path(path)
        with atomic_target(path, overwrite) as tmp:
            torch.save(state, tmp)
        return path

    @classmethod
    def load(cls, path, *, device=None) -> SurrogateMatrixElement:
        """Read a surrogate written by :meth:`save`.

        Args:
            path: file written by :meth:`save`.
            device: where to put the networks; default CPU.

        Raises:
            FileNotFoundError: no such file. ValueError: not a surrogate file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no surrogate file at {str(path)!r}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"path: {str(path)!r} is not an invsim surrogate file")
        if state.get("version") != _VERSION:
            raise ValueError(
                f"path: surrogate format version {state.get('version')} is not supported "
                f"(expected {_VERSION})"
            )
        cfg = dict(state["regressor"])
        dtype = getattr(torch, cfg.pop("dtype"))
        reg = SymmetricRegressor(
            cfg.pop("n_out"), cfg.pop("permutations"), cfg.pop("n_groups"),
            kind=cfg.pop("kind"), dtype=dtype, **cfg,
        )
        reg.load_state_dict(state["state_dict"])
        if device is not None:
            reg = reg.to(device)
        return cls(
            reg, groups=state["groups"], references=state["references"],
            ratios=state["ratios"], reference=state["reference"],
            final_state=tuple(state["final_state"]),
            flavour_channels=tuple(tuple(c) for c in state["flavour_channels"]),
            params=state["params"], process_name=state["process_name"],
            samples=state["samples"], seed=state["seed"],
        )

    def __repr__(self) -> str:
        return (f"SurrogateMatrixElement({self.process_name!r}, kind={self.regressor.kind!r}, "
                f"groups={self.regressor.n_groups}, reference={self.reference!r})")


class SurrogateProcess(Process):
    """A process whose matrix element is a surrogate; everything else is the original's.

    Use it wherever a process is expected, e.g. ``HadronicIntegrand(SurrogateProcess(p,
    s))``; parameters other than the surrogate's training values raise ``ValueError``.

    Args:
        process: the exact process (phase space, scales, cuts, observables come from it).
        surrogate: a :class:`SurrogateMatrixElement` trained on it.
    """

    def __init__(self, process: Process, surrogate: SurrogateMatrixElement) -> None:
        if not isinstance(process, Process):
            raise TypeError(f"process: expected a Process, got {type(process).__name__}")
        if not isinstance(surrogate, SurrogateMatrixElement):
            raise TypeError(
                f"surrogate: expected a SurrogateMatrixElement, got {type(surrogate).__name__}")
        if tuple(process.final_state) != surrogate.final_state or tuple(
                process.flavour_channels) != surrogate.flavour_channels:
            raise ValueError(
                f"surrogate: trained for final state {surrogate.final_state} and "
                f"{len(surrogate.flavour_channels)} channels, the process has "
                f"{tuple(process.final_state)} and {len(process.flavour_channels)}"
            )
        self.base = process
        self.surrogate = surrogate
        self.name = f"{process.name}-surrogate"
        self.sqrt_s = process.sqrt_s
        self.parameters = process.parameters
        self.final_state = process.final_state
        self.flavour_channels = process.flavour_channels
        self.pdf = getattr(process, "pdf", None)
        self.mur_factor, self.muf_factor = process.mur_factor, process.muf_factor

    def matrix_element(self, events, params):
        """Surrogate |M|², shape (n, n_channels) (see :class:`SurrogateMatrixElement`).

        Evaluated only at the events that pass :meth:`cuts` (zero elsewhere, where the
        hadronic integrand vanishes anyway), so points outside the cuts cost nothing
        and never reach the features (e.g. collinear pairs). Dtype of the momenta.
        """
        self.surrogate.check_params(params)
        self.surrogate._check_events(events)
        keep = self.base.cuts(events)
        out = torch.zeros(len(events), len(self.flavour_channels),
                          dtype=events.momenta.dtype, device=events.momenta.device)
        if bool(keep.any()):
            idx = keep.nonzero()[:, 0]
            me = self.surrogate.matrix_element(events[idx], None)
            out = out.index_put((idx,), me.to(out.device, out.dtype))
        return out

    def phase_space(self, params=None) -> list:
        """The original process's phase-space maps."""
        return self.base.phase_space(params)

    def scales(self, events, params):
        """The original process's scales (μ_F², μ_R²), each (n,) in GeV²."""
        return self.base.scales(events, params)

    def cuts(self, events):
        """The original process's cuts, boolean (n,)."""
        return self.base.cuts(events)

    def observables(self, events):
        """The original process's observables by name, each (n,)."""
        return self.base.observables(events)

    def sample_final_state(self, n, *, generator=None, device=None):
        """The original process's final-state flavours, shape (n, k)."""
        return self.base.sample_final_state(n, generator=generator, device=device)
