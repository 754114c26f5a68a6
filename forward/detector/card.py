r"""Detector cards: validated, frozen configuration of the parametrised fast detector.

A :class:`DetectorCard` holds, per object type (electron, muon, photon, jet, b-jet),
a :class:`Resolution` (relative resolution in bins of :math:`|\eta|`), an
:class:`Efficiency` table (reconstruction x identification, piecewise constant in
:math:`(|\eta|, p_T)` like the ``EfficiencyFormula`` blocks of Delphes cards), an
acceptance (``pt_min``, ``eta_max``) and Gaussian :math:`\eta`/:math:`\phi` smearing;
plus b-tagging tables, an event selection and a jet energy scale (``jes``).

**Jet energy scale.** ``DetectorCard.jes`` (default 1) multiplies the four-momentum of
every reconstructed jet, b-tagged or not, after its resolution smearing and before the
acceptance cuts and b-tagging (b-tagging uses the true kinematics); the missing pT, minus
the vector sum of the reconstructed objects, follows. It is the detector nuisance
``jes`` of the inverse chain (:mod:`invsim.mem.detector_nuisances`).

Every dataclass checks itself in ``__post_init__``; :meth:`DetectorCard.from_dict`
overlays a (partial) nested dict on the default card, rejects unknown keys and
prefixes every error with the dotted key, e.g. ``muon.resolution.constant``.
Cards read from YAML (PyYAML, when importable) or JSON files.

The default card (:func:`default_card`) follows the Delphes CMS card
``cards/delphes_card_CMS.tcl`` of the delphes/delphes repository; each number cites
its block there.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BTagging",
    "DetectorCard",
    "Efficiency",
    "ObjectConfig",
    "Resolution",
    "Selection",
    "default_card",
    "load_card",
]

_INF = math.inf


def _floats(name: str, values, *, low: float = 0.0, allow_inf: bool = False) -> tuple:
    """Tuple of floats >= ``low``; NaN, booleans and strings other than 'inf' rejected."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name}: expected a list of numbers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or v is None:
            raise TypeError(f"{name}: expected numbers, got {v!r}")
        try:
            f = float(v)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name}: expected numbers, got {v!r}") from err
        if math.isnan(f) or (math.isinf(f) and not (allow_inf and f > 0)):
            raise ValueError(f"{name}: expected finite numbers, got {v!r}")
        if f < low:
            raise ValueError(f"{name}: expected values >= {low}, got {v!r}")
        out.append(f)
    return tuple(out)


def _number(name: str, value, *, low: float = 0.0, allow_inf: bool = False) -> float:
    """A single float >= ``low`` (see :func:`_floats`)."""
    return _floats(name, [value], low=low, allow_inf=allow_inf)[0]


def _increasing(name: str, edges: tuple) -> None:
    if any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
        raise ValueError(f"{name}: expected strictly increasing values, got {list(edges)}")


@dataclass(frozen=True)
class Resolution:
    r"""Relative resolution in bins of :math:`|\eta|`.

    .. math:: \frac{\sigma_X}{X} = \frac{a}{\sqrt{X}} \oplus \frac{b}{X} \oplus c
              \oplus d\,X, \qquad X = E \text{ or } p_T \text{ in GeV},

    (⊕: sum in quadrature): calorimeters use ``variable="energy"`` with stochastic
    ``a`` [GeV^½], noise ``b`` [GeV] and constant ``c``; trackers use
    ``variable="pt"`` with constant ``c`` and ``linear`` ``d`` [1/GeV]
    (:math:`\sigma_{p_T}/p_T = c \oplus d\,p_T`).

    Attributes:
        variable: ``"energy"`` or ``"pt"``: the quantity X that is smeared (the whole
            four-momentum is scaled by the same factor, so E, pT and m move together).
        eta_max: upper |η| edge of each bin, strictly increasing; bin i covers
            (eta_max[i-1], eta_max[i]]; beyond the last edge the last bin applies.
        stochastic, noise, constant, linear: one value >= 0 per bin.
    """

    variable: str = "energy"
    eta_max: tuple[float, ...] = (_INF,)
    stochastic: tuple[float, ...] = (0.0,)
    noise: tuple[float, ...] = (0.0,)
    constant: tuple[float, ...] = (0.0,)
    linear: tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        if self.variable not in ("energy", "pt"):
            raise ValueError(f"variable: expected 'energy' or 'pt', got {self.variable!r}")
        eta = _floats("eta_max", self.eta_max, low=0.0, allow_inf=True)
        if not eta:
            raise ValueError("eta_max: expected at least one bin edge, got []")
        _increasing("eta_max", eta)
        object.__setattr__(self, "eta_max", eta)
        for name in ("stochastic", "noise", "constant", "linear"):
            vals = _floats(name, getattr(self, name))
            if len(vals) != len(eta):
                raise ValueError(
                    f"{name}: expected {len(eta)} values (one per eta_max bin), got {len(vals)}"
                )
            object.__setattr__(self, name, vals)


@dataclass(frozen=True)
class Efficiency:
    r"""Efficiency, piecewise constant in (|η|, pT) bins; zero outside the table.

    Attributes:
        eta_edges: |η| bin edges, strictly increasing, >= 0 (n_eta + 1 values).
        pt_edges: pT bin edges in GeV, strictly increasing, >= 0, last may be ``inf``
            (n_pt + 1 values).
        values: efficiencies in [0, 1], shape (n_eta, n_pt) as nested lists; bin
            (i, j) covers eta_edges[i] <= |η| < eta_edges[i+1] and
            pt_edges[j] <= pT < pt_edges[j+1].
    """

    eta_edges: tuple[float, ...] = (0.0, _INF)
    pt_edges: tuple[float, ...] = (0.0, _INF)
    values: tuple[tuple[float, ...], ...] = ((1.0,),)

    def __post_init__(self) -> None:
        eta = _floats("eta_edges", self.eta_edges, allow_inf=True)
        pt = _floats("pt_edges", self.pt_edges, allow_inf=True)
        for name, edges in (("eta_edges", eta), ("pt_edges", pt)):
            if len(edges) < 2:
                raise ValueError(f"{name}: expected at least 2 edges, got {list(edges)}")
            _increasing(name, edges)
        if isinstance(self.values, (str, bytes)) or not hasattr(self.values, "__iter__"):
            raise TypeError(f"values: expected a nested list of numbers, got {self.values!r}")
        rows = tuple(_floats("values", row) for row in self.values)
        shape = (len(eta) - 1, len(pt) - 1)
        if len(rows) != shape[0] or any(len(r) != shape[1] for r in rows):
            got = (len(rows), sorted({len(r) for r in rows}))
            raise ValueError(
                f"values: expected shape {shape} (eta bins, pt bins), got {got[0]} rows of "
                f"lengths {got[1]}"
            )
        if any(v > 1.0 for r in rows for v in r):
            got = [list(r) for r in rows]
            raise ValueError(f"values: expected efficiencies in [0, 1], got {got}")
        object.__setattr__(self, "eta_edges", eta)
        object.__setattr__(self, "pt_edges", pt)
        object.__setattr__(self, "values", rows)


@dataclass(frozen=True)
class ObjectConfig:
    """Everything the detector does to one object type.

    Attributes:
        resolution: energy/momentum resolution.
        efficiency: reconstruction x identification efficiency, evaluated on the
            particle-level (true) pT and |η|.
        pt_min: acceptance threshold on the reconstructed pT in GeV.
        eta_max: acceptance on the reconstructed |η|.
        sigma_eta: Gaussian width of the η smearing (absolute).
        sigma_phi: Gaussian width of the φ smearing in radians (absolute).
    """

    resolution: Resolution = field(default_factory=Resolution)
    efficiency: Efficiency = field(default_factory=Efficiency)
    pt_min: float = 0.0
    eta_max: float = _INF
    sigma_eta: float = 0.0
    sigma_phi: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.resolution, Resolution):
            got = type(self.resolution).__name__
            raise TypeError(f"resolution: expected a Resolution, got {got}")
        if not isinstance(self.efficiency, Efficiency):
            got = type(self.efficiency).__name__
            raise TypeError(f"efficiency: expected an Efficiency, got {got}")
        object.__setattr__(self, "pt_min", _number("pt_min", self.pt_min))
        object.__setattr__(self, "eta_max", _number("eta_max", self.eta_max, allow_inf=True))
        object.__setattr__(self, "sigma_eta", _number("sigma_eta", self.sigma_eta))
        object.__setattr__(self, "sigma_phi", _number("sigma_phi", self.sigma_phi))


@dataclass(frozen=True)
class BTagging:
    """b-tagging probabilities of jets by true flavour, functions of the true (|η|, pT).

    Attributes:
        b: tagging efficiency of b jets.
        c: mistag rate of c jets.
        light: mistag rate of light-quark and gluon jets.
    """

    b: Efficiency = field(default_factory=lambda: Efficiency(values=((0.0,),)))
    c: Efficiency = field(default_factory=lambda: Efficiency(values=((0.0,),)))
    light: Efficiency = field(default_factory=lambda: Efficiency(values=((0.0,),)))

    def __post_init__(self) -> None:
        for name in ("b", "c", "light"):
            if not isinstance(getattr(self, name), Efficiency):
                got = type(getattr(self, name)).__name__
                raise TypeError(f"{name}: expected an Efficiency, got {got}")


@dataclass(frozen=True)
class Selection:
    """Event selection on reconstructed objects (all minima inclusive).

    Attributes:
        min_electrons, min_muons, min_leptons (e + μ), min_photons: minimum counts.
        min_jets: minimum number of jets, b-tagged ones included.
        min_bjets: minimum number of b-tagged jets.
        min_met: minimum missing transverse momentum in GeV.
    """

    min_electrons: int = 0
    min_muons: int = 0
    min_leptons: int = 0
    min_photons: int = 0
    min_jets: int = 0
    min_bjets: int = 0
    min_met: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "min_met":
                object.__setattr__(self, f.name, _number(f.name, v))
            elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{f.name}: expected an integer >= 0, got {v!r}")


@dataclass(frozen=True)
class DetectorCard:
    """A complete detector description; see the module docstring.

    Attributes:
        electron, muon, photon, jet, bjet: per-type configuration (``bjet`` applies to
            jets from b quarks, tagged or not; ``jet`` to light, c and gluon jets).
        btag: b-tagging efficiency and mistag rates.
        selection: event selection defining ``RecoEvents.passed``.
        name: free text naming the card.
        jes: jet energy scale factor (> 0, default 1): reconstructed jet four-momenta
            (b-jets included) are multiplied by it after the smearing, before the
            acceptance; the missing pT is recomputed from the scaled objects.
    """

    electron: ObjectConfig = field(default_factory=ObjectConfig)
    muon: ObjectConfig = field(default_factory=ObjectConfig)
    photon: ObjectConfig = field(default_factory=ObjectConfig)
    jet: ObjectConfig = field(default_factory=ObjectConfig)
    bjet: ObjectConfig = field(default_factory=ObjectConfig)
    btag: BTagging = field(default_factory=BTagging)
    selection: Selection = field(default_factory=Selection)
    name: str = "custom"
    jes: float = 1.0

    def __post_init__(self) -> None:
        jes = _number("jes", self.jes)
        if not jes > 0:
            raise ValueError(f"jes: expected a jet energy scale factor > 0, got {self.jes!r}")
        object.__setattr__(self, "jes", jes)
        for name in ("electron", "muon", "photon", "jet", "bjet"):
            if not isinstance(getattr(self, name), ObjectConfig):
                got = type(getattr(self, name)).__name__
                raise TypeError(f"{name}: expected an ObjectConfig, got {got}")
        if not isinstance(self.btag, BTagging):
            raise TypeError(f"btag: expected a BTagging, got {type(self.btag).__name__}")
        if not isinstance(self.selection, Selection):
            raise TypeError(f"selection: expected a Selection, got {type(self.selection).__name__}")
        if not isinstance(self.name, str):
            raise TypeError(f"name: expected a string, got {self.name!r}")

    # -- conversion ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (lists for tuples, ``inf`` as float), JSON/YAML-ready."""
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base: DetectorCard | None = None
    ) -> DetectorCard:
        """Build a card by overlaying a (partial) nested dict on ``base``.

        Args:
            data: nested mapping with the field names of the dataclasses; keys not
                given keep ``base``'s values. Numbers may be given as strings
                ``"inf"``.
            base: card to start from; default :func:`default_card`.

        Raises:
            ValueError: unknown keys, negative resolutions, efficiencies outside
                [0, 1], ...; the message starts with the dotted key.
            TypeError: wrong kinds of values, with the dotted key.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"card: expected a mapping, got {type(data).__name__}")
        base = default_card() if base is None else base
        return _build(cls, data, base, "")

    @classmethod
    def from_file(cls, path: str | Path) -> DetectorCard:
        """Read a card from a ``.json``, ``.yaml`` or ``.yml`` file (overlaid on the default).

        Raises:
            ImportError: a YAML file and PyYAML is not installed (``pip install pyyaml``).
            ValueError: unsupported suffix or invalid content (message names the key).
        """
        path = Path(path)
        try:
            text = path.read_text()
        except UnicodeDecodeError as err:
            raise ValueError(f"card: {str(path)!r} is not a text (JSON/YAML) file: {err}") from None
        suffix = path.suffix.lower()
        if suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"card: {str(path)!r} is not valid JSON: {err}") from None
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as err:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "reading YAML detector cards needs PyYAML: pip install pyyaml "
                    "(or write the card as JSON)"
                ) from err
            data = yaml.safe_load(text) or {}
        else:
            raise ValueError(f"path: expected a .json, .yaml or .yml file, got {path.name!r}")
        return cls.from_dict(data)

    def to_json(self) -> str:
        """The card as JSON text (``Infinity`` for infinite edges, read back by ``json``)."""
        return json.dumps(self.to_dict(), indent=1)


def _to_plain(obj):
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _build(cls, data: Mapping[str, Any], base, prefix: str):
    """Recursively build dataclass ``cls`` from ``data`` over ``base``; errors name the key."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = f" in {prefix[:-1]!r}" if prefix else ""
        raise ValueError(
            f"{prefix}{unknown[0]}: unknown key{where}; known keys: {sorted(names)}"
        )
    kwargs = {}
    for name in names:
        current = getattr(base, name)
        if name not in data:
            kwargs[name] = current
            continue
        value = data[name]
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise TypeError(f"{prefix}{name}: expected a mapping, got {value!r}")
            kwargs[name] = _build(type(current), value, current, f"{prefix}{name}.")
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{prefix}{err}") from None


# -- the default card ----------------------------------------------------------------------
# Numbers from the Delphes CMS card (delphes/delphes: cards/delphes_card_CMS.tcl). Where the
# card multiplies a tracking efficiency and an identification efficiency, the product is
# given. Simplifications: jet energy scale 1 (DetectorCard.jes), no isolation module (particle-level
# isolation is done by forward.shower), η-shape factors evaluated at bin centres.


def _ecal_resolution() -> Resolution:
    # ECal ResolutionFormula: |η| <= 1.5: (1 + 0.64 η²) sqrt(E² 0.008² + E 0.11² + 0.40²);
    # 1.5 < |η| <= 2.5: (2.16 + 5.6 (|η| - 2)²) x same; 2.5 < |η| <= 5: sqrt(E² 0.107² + E 2.08²).
    # σ_E/E = 0.11/√E ⊕ 0.40/E ⊕ 0.008 times the η factor at the bin centre.
    edges = (0.5, 1.0, 1.5, 2.0, 2.5, 5.0)
    centres = (0.25, 0.75, 1.25, 1.75, 2.25)
    factors = [1 + 0.64 * c**2 for c in centres[:3]] + [
        2.16 + 5.6 * (c - 2.0) ** 2 for c in centres[3:]
    ]
    return Resolution(
        variable="energy",
        eta_max=edges,
        stochastic=tuple(0.11 * f for f in factors) + (2.08,),
        noise=tuple(0.40 * f for f in factors) + (0.0,),
        constant=tuple(0.008 * f for f in factors) + (0.107,),
        linear=(0.0,) * 6,
    )


def _hcal_resolution() -> Resolution:
    # HCal ResolutionFormula: |η| <= 3: sqrt(E² 0.050² + E 1.50²); 3 < |η| <= 5:
    # sqrt(E² 0.130² + E 2.70²), i.e. σ_E/E = 1.50/√E ⊕ 0.050 and 2.70/√E ⊕ 0.130
    # (calorimeter-only jets: conservative next to CMS particle-flow jets).
    return Resolution(
        variable="energy",
        eta_max=(3.0, 5.0),
        stochastic=(1.50, 2.70),
        noise=(0.0, 0.0),
        constant=(0.050, 0.130),
        linear=(0.0, 0.0),
    )


def _muon_efficiency() -> Efficiency:
    # MuonTrackingEfficiency (pT > 1): 0.99 (|η| <= 1.5), 0.98 (1.5-2.5) times
    # MuonEfficiency: pT > 10: 0.95 up to 1 TeV, 0.95 exp(0.5 - 5e-4 pT) above (at bin centres).
    pt_edges = (10.0, 1000.0, 1500.0, 2000.0, 3000.0, _INF)
    centres = (None, 1250.0, 1750.0, 2500.0, 3500.0)
    ident = [0.95] + [0.95 * math.exp(0.5 - 5.0e-4 * c) for c in centres[1:]]
    return Efficiency(
        eta_edges=(0.0, 1.5, 2.4),
        pt_edges=pt_edges,
        values=(tuple(0.99 * e for e in ident), tuple(0.98 * e for e in ident)),
    )


def _btag_table(formula) -> Efficiency:
    # BTagging EfficiencyFormula evaluated at pT bin centres (last bin at 750 GeV), |η| < 2.5
    # (JetFlavorAssociation PartonEtaMax 2.5).
    pt_edges = (20.0, 30.0, 50.0, 70.0, 100.0, 150.0, 200.0, 300.0, 500.0, _INF)
    centres = [0.5 * (a + b) for a, b in zip(pt_edges[:-2], pt_edges[1:-1], strict=True)] + [750.0]
    return Efficiency(
        eta_edges=(0.0, 2.5), pt_edges=pt_edges, values=(tuple(formula(pt) for pt in centres),)
    )


def default_card() -> DetectorCard:
    """The default card, close to CMS (numbers from the Delphes CMS card, see comments).

    Returns:
        A :class:`DetectorCard` named ``"cms"`` with no event selection.
    """
    ecal = _ecal_resolution()
    electron = ObjectConfig(
        resolution=ecal,
        # ElectronTrackingEfficiency x ElectronEfficiency: |η| <= 1.5: 0.95 x 0.95 (pT <= 100),
        # 0.99 x 0.95 (pT > 100); 1.5 < |η| <= 2.5: 0.83 x 0.85, 0.90 x 0.85; 0 for pT <= 10.
        efficiency=Efficiency(
            eta_edges=(0.0, 1.5, 2.5),
            pt_edges=(10.0, 100.0, _INF),
            values=((0.95 * 0.95, 0.99 * 0.95), (0.83 * 0.85, 0.90 * 0.85)),
        ),
        pt_min=10.0,
        eta_max=2.5,
        sigma_eta=0.0174 / math.sqrt(12.0),  # ECal crystal 0.0174 wide, centre smeared
        sigma_phi=(math.pi / 180.0) / math.sqrt(12.0),  # ECal φ bins of 1 degree
    )
    muon = ObjectConfig(
        # MuonMomentumSmearing: σ_pT/pT = sqrt(c² + (d pT)²) with (c, d) = (0.01, 1.0e-4)
        # for |η| <= 0.5, (0.015, 1.5e-4) for 0.5-1.5, (0.025, 3.5e-4) for 1.5-2.5.
        resolution=Resolution(
            variable="pt",
            eta_max=(0.5, 1.5, 2.5),
            stochastic=(0.0, 0.0, 0.0),
            noise=(0.0, 0.0, 0.0),
            constant=(0.01, 0.015, 0.025),
            linear=(1.0e-4, 1.5e-4, 3.5e-4),
        ),
        efficiency=_muon_efficiency(),
        pt_min=10.0,
        eta_max=2.4,
        sigma_eta=0.001,  # tracker direction, ~1 mrad (not in the card)
        sigma_phi=0.001,
    )
    photon = ObjectConfig(
        resolution=ecal,
        # PhotonEfficiency: pT > 10: 0.95 (|η| <= 1.5), 0.85 (1.5-2.5).
        efficiency=Efficiency(
            eta_edges=(0.0, 1.5, 2.5), pt_edges=(10.0, _INF), values=((0.95,), (0.85,))
        ),
        pt_min=10.0,
        eta_max=2.5,
        sigma_eta=0.0174 / math.sqrt(12.0),
        sigma_phi=(math.pi / 180.0) / math.sqrt(12.0),
    )
    jet = ObjectConfig(
        resolution=_hcal_resolution(),
        efficiency=Efficiency(eta_edges=(0.0, 5.0), pt_edges=(0.0, _INF), values=((1.0,),)),
        pt_min=20.0,  # FastJetFinder JetPTMin 20
        eta_max=5.0,  # calorimeter coverage
        sigma_eta=0.087 / math.sqrt(12.0),  # HCal towers 0.087 x 5 degrees
        sigma_phi=(5.0 * math.pi / 180.0) / math.sqrt(12.0),
    )
    btag = BTagging(
        # BTagging (arXiv:1211.4462): b: 0.85 tanh(0.0025 pT) 25/(1 + 0.063 pT);
        # c: 0.25 tanh(0.018 pT)/(1 + 0.0013 pT); light: 0.01 + 3.8e-5 pT.
        b=_btag_table(lambda pt: 0.85 * math.tanh(0.0025 * pt) * 25.0 / (1.0 + 0.063 * pt)),
        c=_btag_table(lambda pt: 0.25 * math.tanh(0.018 * pt) / (1.0 + 0.0013 * pt)),
        light=_btag_table(lambda pt: 0.01 + 3.8e-5 * pt),
    )
    return DetectorCard(
        electron=electron,
        muon=muon,
        photon=photon,
        jet=jet,
        bjet=jet,
        btag=btag,
        selection=Selection(),
        name="cms",
    )


def load_card(card: DetectorCard | Mapping[str, Any] | str | Path | None) -> DetectorCard:
    """Resolve the ways a card can be given.

    Args:
        card: a card; ``None`` or ``"cms"`` for the default; a nested dict overlaid on
            the default; or a path to a JSON/YAML file.

    Raises:
        TypeError: anything else. FileNotFoundError: a path that does not exist.
    """
    if card is None or (isinstance(card, str) and card == "cms"):
        return default_card()
    if isinstance(card, DetectorCard):
        return card
    if isinstance(card, Mapping):
        return DetectorCard.from_dict(card)
    if isinstance(card, (str, Path)):
        path = Path(card)
        if not path.exists():
            raise FileNotFoundError(
                f"card: no such detector card file {str(path)!r} (or use 'cms')"
            )
        return DetectorCard.from_file(path)
    raise TypeError(f"card: expected a DetectorCard, dict, 'cms' or a file path, got {card!r}")
