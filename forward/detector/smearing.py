r"""The parametrised fast detector: efficiencies, smearing, acceptance, b-tagging, MET.

For every particle-level object (see :mod:`forward.detector.objects`), in this order:

1. **Efficiency**: kept with probability ε(pT, |η|) of its type, evaluated on the
   particle-level (true) kinematics, so ε is a function of the hard event.
2. **Smearing**: the four-momentum is scaled by :math:`f = \max(0, 1 + \sigma z)`,
   :math:`z \sim N(0, 1)`, with σ the relative resolution of its type at the true
   energy (or pT) and |η|; so E, pT and the mass move together and
   :math:`E_{reco}/E - 1 = \sigma z` exactly. Then η and φ get absolute Gaussian
   shifts (when the type's ``sigma_eta``/``sigma_phi`` are non-zero) at fixed pT and mass.
   Jets (b-jets included) are then scaled by the jet energy scale factor
   (``DetectorCard.jes``, or the ``jes`` argument of :func:`smear`).
3. **Acceptance**: reconstructed pT >= ``pt_min`` and |η| <= ``eta_max``.
4. **b-tagging** of jets from the true flavour (b, c, light) at the true (|η|, pT).
5. **MET** = minus the vector sum of the reconstructed objects' transverse momenta.
6. **Selection** of events on the object counts and MET (``RecoEvents.passed``).

The random numbers are drawn in one fixed layout per call (3 normals and 2 uniforms per
object slot), so a seed fixes the output whatever the card.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from forward import kinematics as kin
from forward._validation import make_generator
from forward.detector.card import (
    DetectorCard,
    Efficiency,
    Resolution,
    Selection,
    load_card,
)
from forward.detector.objects import ObjectType, ParticleObjects, RecoEvents, particle_class
from forward.events import HardEvents

__all__ = ["Detector", "efficiency", "make_generator", "relative_resolution", "smear"]

#: particle class (objects.particle_class) -> index into the card's object configs
#: (electron, muon, photon, jet, bjet); -1 for invisible
_CONFIG_OF_CLASS = (0, 1, 2, 3, 3, 4, -1)
_CONFIG_NAMES = ("electron", "muon", "photon", "jet", "bjet")


def relative_resolution(
    res: Resolution, value: torch.Tensor, abs_eta: torch.Tensor
) -> torch.Tensor:
    r"""Relative resolution :math:`\sigma_X / X` of a :class:`Resolution` at X and |η|.

    Args:
        res: the resolution model.
        value: X = energy or pT (as ``res.variable`` says) in GeV, shape (...).
        abs_eta: |η|, same shape.

    Returns:
        Dimensionless σ_X/X, shape (...), dtype and device of ``value``; infinite at X = 0
        when the stochastic or noise term is non-zero.
    """
    kw = {"dtype": value.dtype, "device": value.device}
    edges = torch.tensor(res.eta_max, **kw)
    pars = torch.tensor([res.stochastic, res.noise, res.constant, res.linear], **kw)
    b = torch.bucketize(abs_eta.contiguous(), edges, right=False).clamp(max=len(res.eta_max) - 1)
    a, n, c, d = pars[:, b]
    return torch.sqrt(a**2 / value + n**2 / value**2 + c**2 + (d * value) ** 2)


def efficiency(eff: Efficiency, pt: torch.Tensor, abs_eta: torch.Tensor) -> torch.Tensor:
    """Look up an :class:`Efficiency` table; zero outside its (|η|, pT) range.

    Args:
        eff: the table.
        pt: transverse momentum in GeV, shape (...).
        abs_eta: |η|, same shape.

    Returns:
        Efficiencies in [0, 1], shape (...), dtype and device of ``pt``.
    """
    kw = {"dtype": pt.dtype, "device": pt.device}
    eta_e = torch.tensor(eff.eta_edges, **kw)
    pt_e = torch.tensor(eff.pt_edges, **kw)
    table = torch.tensor(eff.values, **kw)
    n_eta, n_pt = table.shape
    i = torch.bucketize(abs_eta.contiguous(), eta_e, right=True) - 1
    j = torch.bucketize(pt.contiguous(), pt_e, right=True) - 1
    inside = (i >= 0) & (i < n_eta) & (j >= 0) & (j < n_pt)
    val = table[i.clamp(0, n_eta - 1), j.clamp(0, n_pt - 1)]
    return torch.where(inside, val, torch.zeros_like(val))


def _selection(sel: Selection, counts: torch.Tensor, met_pt: torch.Tensor) -> torch.Tensor:
    e, mu, gam, jet, bjet = counts.unbind(-1)
    return (
        (e >= sel.min_electrons)
        & (mu >= sel.min_muons)
        & (e + mu >= sel.min_leptons)
        & (gam >= sel.min_photons)
        & (jet + bjet >= sel.min_jets)
        & (bjet >= sel.min_bjets)
        & (met_pt >= sel.min_met)
    )


def smear(
    objects: ParticleObjects,
    card: DetectorCard,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    jes=None,
) -> RecoEvents:
    """Apply the detector described by ``card`` to particle-level objects.

    Args:
        objects: particle-level objects, momenta (n, k, 4) in GeV (float32 or float64;
            the output keeps dtype and device).
        card: the detector card.
        seed: seed of a new generator on the inputs' device.
        generator: a ``torch.Generator`` on the inputs' device (instead of ``seed``).
        jes: jet energy scale factor overriding ``card.jes``: a number > 0 or a tensor
            of shape (n,) (one factor per event, e.g. to train across a JES range).

    Returns:
        :class:`RecoEvents` with n rows and m = k object slots.
    """
    if not isinstance(objects, ParticleObjects):
        raise TypeError(f"objects: expected ParticleObjects, got {type(objects).__name__}")
    if not isinstance(card, DetectorCard):
        raise TypeError(f"card: expected a DetectorCard, got {type(card).__name__}")
    p, mask = objects.momenta, objects.mask
    n, k = mask.shape
    dev, dt = p.device, p.dtype
    jes = _jes(card.jes if jes is None else jes, n, dt, dev)
    g = make_generator(seed, generator, dev)
    z = torch.randn((n, k, 3), generator=g, dtype=dt, device=dev)
    u = torch.rand((n, k, 2), generator=g, dtype=dt, device=dev)

    # particle class and config index; padded slots get a harmless dummy vector
    cls = torch.where(mask, objects.pids, torch.full_like(objects.pids, 22))
    cls = particle_class(cls)
    cfg = torch.tensor(_CONFIG_OF_CLASS, device=dev)[cls]
    cfg = torch.where(mask, cfg, torch.full_like(cfg, -1))
    dummy = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=dt, device=dev)
    safe = torch.where(mask[..., None], p, dummy)
    pt0, eta0, phi0, m0 = kin.pt(safe), kin.pseudorapidity(safe), kin.phi(safe), kin.mass(safe)
    abseta0 = eta0.abs()

    zeros = torch.zeros(n, k, dtype=dt, device=dev)
    sigma, eff, s_eta, s_phi, pt_min = zeros, zeros, zeros, zeros, zeros
    eta_max = torch.full((n, k), math.inf, dtype=dt, device=dev)
    for i, name in enumerate(_CONFIG_NAMES):
        oc = getattr(card, name)
        sel = cfg == i
        x = safe[..., 0] if oc.resolution.variable == "energy" else pt0
        sigma = torch.where(sel, relative_resolution(oc.resolution, x, abseta0), sigma)
        eff = torch.where(sel, efficiency(oc.efficiency, pt0, abseta0), eff)
        s_eta = torch.where(sel, torch.full_like(zeros, oc.sigma_eta), s_eta)
        s_phi = torch.where(sel, torch.full_like(zeros, oc.sigma_phi), s_phi)
        pt_min = torch.where(sel, torch.full_like(zeros, oc.pt_min), pt_min)
        eta_max = torch.where(sel, torch.full_like(zeros, oc.eta_max), eta_max)
    sigma = torch.where(cfg >= 0, sigma, zeros)  # no inf/NaN from invisible/padded slots

    # 1-2: efficiency, energy scale factor, angular smearing
    found = (cfg >= 0) & (u[..., 0] < eff)
    f = (1.0 + sigma * z[..., 0]).clamp(min=0.0)
    is_jet = (cfg == 3) | (cfg == 4)
    f = torch.where(is_jet, f * jes[:, None], f)
    scaled = f[..., None] * safe
    eta1 = eta0 + s_eta * z[..., 1]
    phi1 = torch.remainder(phi0 + s_phi * z[..., 2] + math.pi, 2 * math.pi) - math.pi
    rotated = kin.from_pt_eta_phi_m(f * pt0, eta1, phi1, f * m0)
    angular = ((s_eta > 0) | (s_phi > 0))[..., None]
    p1 = torch.where(angular, rotated, scaled)
    pt1 = kin.pt(p1)
    eta1 = torch.where(angular[..., 0], eta1, eta0)

    # 3: acceptance on reconstructed kinematics
    reco = found & (pt1 >= pt_min) & (eta1.abs() <= eta_max)

    # 4: b-tagging by true flavour
    tag_eff = zeros
    for c, table in ((3, card.btag.light), (4, card.btag.c), (5, card.btag.b)):
        tag_eff = torch.where(cls == c, efficiency(table, pt0, abseta0), tag_eff)
    tagged = u[..., 1] < tag_eff
    types = torch.tensor([0, 1, 2, 3, 3, 3, -1], device=dev)[cls]
    types = torch.where((types == ObjectType.JET) & tagged, types + 1, types)
    types = torch.where(reco, types, torch.full_like(types, -1))
    is_lepton = (cls == 0) | (cls == 1)
    charges = torch.where(is_lepton & reco, -torch.sign(objects.pids), torch.zeros_like(types))

    # pack reconstructed objects to the front, sorted by pT
    key = torch.where(reco, pt1, torch.full_like(pt1, -1.0))
    order = torch.argsort(key, dim=1, descending=True, stable=True)
    reco_s = reco.gather(1, order)
    p_s = torch.where(reco_s[..., None], p1.gather(1, order[..., None].expand(n, k, 4)), 0.0)
    types_s = types.gather(1, order)
    charges_s = charges.gather(1, order)
    index_s = torch.where(reco_s, order, torch.full_like(order, -1))

    # 5-6: MET, multiplicities, selection
    met = -(p_s[..., 1:3]).sum(dim=1)
    counts = torch.stack([(types_s == t).sum(-1) for t in range(len(ObjectType))], dim=-1)
    passed = _selection(card.selection, counts, torch.hypot(met[:, 0], met[:, 1]))
    return RecoEvents(
        momenta=p_s,
        types=types_s,
        charges=charges_s,
        mask=reco_s,
        particle_index=index_s,
        met=met,
        counts=counts,
        passed=passed,
        hard_index=objects.event_index.clone(),
    )


def _jes(jes, n: int, dtype, device) -> torch.Tensor:
    """The jet energy scale per event, shape (n,); checked (> 0, finite)."""
    if isinstance(jes, bool):
        raise TypeError(f"jes: expected a number > 0 or a tensor of shape ({n},), got {jes!r}")
    t = torch.as_tensor(jes, dtype=dtype, device=device).detach()
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != n):
        raise ValueError(f"jes: expected a number or a tensor of shape ({n},), got shape "
                         f"{tuple(t.shape)}")
    if not bool(torch.isfinite(t).all() & (t > 0).all()):
        raise ValueError(f"jes: expected finite factors > 0, got min {float(t.min())}")
    return t.expand(n)


class Detector:
    """A fast detector built from a card; call it on particle-level objects.

    Args:
        card: a :class:`DetectorCard`, ``None``/``"cms"`` for the default card, a nested
            dict overlaid on the default, or a JSON/YAML file path.
        jes: jet energy scale factor replacing the card's ``jes`` (None keeps it).

    Example:
        >>> det = Detector({"selection": {"min_leptons": 2}})
        >>> reco = det(ParticleObjects.from_hard(events, process.final_state), seed=1)
    """

    def __init__(self, card=None, *, jes: float | None = None) -> None:
        self.card = load_card(card)
        if jes is not None:
            self.card = dataclasses.replace(self.card, jes=jes)

    def __call__(
        self,
        objects: ParticleObjects,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> RecoEvents:
        """Smear ``objects``; see :func:`smear` for arguments and the returned shapes."""
        return smear(objects, self.card, seed=seed, generator=generator)

    @property
    def name(self) -> str:
        """The card's name (``"cms"`` for the default card)."""
        return self.card.name

    def reconstruct(
        self,
        events: HardEvents,
        final_state,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        jes=None,
    ) -> RecoEvents:
        """The detector protocol: each final-state particle of the hard events is one object.

        Args:
            events: hard events, momenta (n, k, 4) in GeV.
            final_state: PDG ids, shape (k,) or (n, k) (e.g. a process's ``final_state``
                or ``sample_final_state(n)``).
            seed, generator: randomness (one of them, or neither for a fresh seed).
            jes: jet energy scale overriding the card's: a number > 0 or a tensor (n,).

        Returns:
            :class:`RecoEvents` (see :func:`smear`).
        """
        objects = ParticleObjects.from_hard(events, final_state)
        return smear(objects, self.card, seed=seed, generator=generator, jes=jes)

    def closed_form(self, n_leptons: int = 2, flavours=None, *, pt_min: float = 0.0,
                    eta_max: float = math.inf):
        """The card's exact lepton acceptance and transfer (:mod:`forward.detector.closed_form`).

        Args:
            n_leptons: charged leptons per event (the observables' order).
            flavours: sequence of (ids, share): the lepton PDG ids of an event in the
                observables' order (length ``n_leptons``) and the share of events with
                them; default muons.
            pt_min, eta_max: the analysis's own lepton cuts, on top of the card's.

        Returns:
            A :class:`~forward.detector.closed_form.GaussianClosedForm`.

        Raises:
            ValueError: an id that is not an electron or muon, or a card without angular
                smearing for it (the transfer would be a delta function).
        """
        from forward.detector.closed_form import GaussianClosedForm, check_cut_arguments

        check_cut_arguments(n_leptons, pt_min, eta_max)
        if flavours is None:
            flavours = [((13,) * n_leptons, 1.0)]
        try:
            flavours = [(tuple(ids), share) for ids, share in flavours]
        except (TypeError, ValueError) as err:
            raise ValueError(f"flavours: expected a sequence of (lepton ids, share) pairs, got "
                             f"{flavours!r}") from err
        rows, shares = [], []
        for ids, share in flavours:
            ids = tuple(int(i) for i in ids)
            if len(ids) != n_leptons:
                raise ValueError(f"flavours: expected {n_leptons} ids per entry, got {ids}")
            rows.append(tuple(self._lepton_response(i, pt_min, eta_max) for i in ids))
            shares.append(share)
        return GaussianClosedForm(rows, shares)

    def _lepton_response(self, pid: int, pt_min: float, eta_max: float):
        from forward.detector.closed_form import LeptonResponse

        names = {11: "electron", 13: "muon"}
        if abs(pid) not in names:
            raise ValueError(f"flavours: the card's closed form covers electrons and muons, "
                             f"got id {pid}")
        oc = getattr(self.card, names[abs(pid)])
        res, eff = oc.resolution, oc.efficiency

        def relative_sigma(pt, eta):
            x = pt * torch.cosh(eta) if res.variable == "energy" else pt
            return relative_resolution(res, x, eta.abs())

        return LeptonResponse(
            relative_sigma=relative_sigma,
            efficiency=lambda pt, eta: efficiency(eff, pt, eta.abs()),
            sigma_eta=oc.sigma_eta, sigma_phi=oc.sigma_phi,
            pt_min=max(oc.pt_min, pt_min), eta_max=min(oc.eta_max, eta_max))

    def __repr__(self) -> str:
        jes = "" if self.card.jes == 1.0 else f", jes={self.card.jes!r}"
        return f"Detector(card={self.card.name!r}{jes})"
