"""Published reference numbers the package is validated against.

Pythia 8.317 hard-process cross sections at √s = 13 TeV with the NNPDF3.1 LO grid
(``PDF:pSet = 18``), as listed in docs/design.md §4, each with
the settings that define it. Tests and ``invsim demo`` compare against these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PYTHIA_REFERENCES", "Reference"]


@dataclass(frozen=True)
class Reference:
    """A reference cross section.

    Attributes:
        label: short human-readable name.
        process: invsim registry name of the process.
        settings: process settings (constructor keywords) that reproduce the set-up.
        params: process parameters that differ from their defaults.
        sigma_pb, error_pb: the reference value and its Monte Carlo error in pb.
    """

    label: str
    process: str
    settings: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    sigma_pb: float = 0.0
    error_pb: float = 0.0


PYTHIA_REFERENCES: dict[str, Reference] = {
    "dy_z_window": Reference(
        "γ*/Z → ee+μμ, 60 < m_ℓℓ < 120 GeV", "drell-yan",
        {"mll_min": 60.0, "mll_max": 120.0, "mode": "gamma_z"}, {}, 3060.19, 1.81),
    "dy_zprime_full": Reference(
        "γ*/Z/Z′ (m_Z′ = 2 TeV), 1.5 < m_ℓℓ < 2.5 TeV", "drell-yan",
        {"mll_min": 1500.0, "mll_max": 2500.0, "mode": "full"}, {"mzp": 2000.0},
        0.039138, 0.000012),
    "dy_zprime_only": Reference(
        "Z′ only (m_Z′ = 2 TeV), 1.5 < m_ℓℓ < 2.5 TeV", "drell-yan",
        {"mll_min": 1500.0, "mll_max": 2500.0, "mode": "zprime_only"}, {"mzp": 2000.0},
        0.039173, 0.000023),
    "ttbar": Reference(
        "tt̄, m_t = 172.5 GeV, μ = m_t", "ttbar", {"scale": "fixed"}, {"mt": 172.5},
        489.44, 0.28),
}
