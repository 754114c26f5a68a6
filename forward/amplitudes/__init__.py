"""Tree-level amplitudes by Berends–Giele recursion in torch (batched, any device).

Modules: :mod:`~forward.amplitudes.spinors` (spinors, spinor products, polarisation
vectors; all-outgoing conventions), :mod:`~forward.amplitudes.recursion`
(colour-ordered gluon currents and amplitudes), :mod:`~forward.amplitudes.colour`
(SU(N) generators, DDM and trace bases, colour matrices; Tr(T^a T^b) = δ^{ab}),
:mod:`~forward.amplitudes.gluons` (colour- and helicity-summed |M|²) and
:mod:`~forward.amplitudes.mhv` (Parke–Taylor MHV amplitudes, the closed-form reference),
:mod:`~forward.amplitudes.quarks` (massless quark lines with vector bosons: spinor
strings, f f̄ → n V, q q̄ → γ*/Z → ℓ⁻ℓ⁺), :mod:`~forward.amplitudes.quark_gluons`
(one quark line with n gluons by Berends–Giele with quark propagators, full colour;
four quarks; :func:`qcd_me2` for any crossing of massless QCD partons),
:mod:`~forward.amplitudes.vector_bosons` (one quark line with n gluons and an off-shell
γ*/Z/W decaying to leptons, V + n jets: the vector current inserted in the quark-line
recursion; γ*/Z and W couplings; full colour).
"""

from forward.amplitudes.colour import (
    BASES,
    MAX_FULL_COLOUR_GLUONS,
    MAX_QUARK_LINE_GLUONS,
    colour_matrix,
    orderings,
    quark_line_colour_matrix,
    quark_line_orderings,
    structure_constants,
    su_n_generators,
)
from forward.amplitudes.gluons import (
    COLOUR_MODES,
    check_gluon_momenta,
    gluon_amplitudes,
    gluon_me2,
    helicity_configurations,
)
from forward.amplitudes.mhv import parke_taylor
from forward.amplitudes.quark_gluons import (
    four_quark_me2,
    qcd_me2,
    quark_gluon_amplitudes,
    quark_gluon_me2,
)
from forward.amplitudes.quarks import (
    quark_lepton_neutral_current_me2,
    quark_line_amplitudes,
    quark_vector_bosons_me2,
    spinor_string,
)
from forward.amplitudes.recursion import colour_ordered_amplitude
from forward.amplitudes.spinors import (
    angle_product,
    minkowski_dot,
    polarisation_vectors,
    sandwich,
    spinors,
    square_product,
)
from forward.amplitudes.vector_bosons import (
    MAX_VECTOR_BOSON_GLUONS,
    charged_current_couplings,
    current_amplitudes,
    neutral_current_couplings,
    vector_boson_amplitudes,
    vector_boson_line_sums,
    vector_boson_me2,
)

__all__ = [
    "BASES",
    "COLOUR_MODES",
    "MAX_FULL_COLOUR_GLUONS",
    "MAX_QUARK_LINE_GLUONS",
    "MAX_VECTOR_BOSON_GLUONS",
    "angle_product",
    "charged_current_couplings",
    "check_gluon_momenta",
    "four_quark_me2",
    "colour_matrix",
    "colour_ordered_amplitude",
    "current_amplitudes",
    "gluon_amplitudes",
    "gluon_me2",
    "helicity_configurations",
    "minkowski_dot",
    "neutral_current_couplings",
    "orderings",
    "parke_taylor",
    "polarisation_vectors",
    "qcd_me2",
    "quark_gluon_amplitudes",
    "quark_gluon_me2",
    "quark_lepton_neutral_current_me2",
    "quark_line_amplitudes",
    "quark_line_colour_matrix",
    "quark_line_orderings",
    "quark_vector_bosons_me2",
    "sandwich",
    "spinor_string",
    "spinors",
    "square_product",
    "structure_constants",
    "su_n_generators",
    "vector_boson_amplitudes",
    "vector_boson_line_sums",
    "vector_boson_me2",
]
