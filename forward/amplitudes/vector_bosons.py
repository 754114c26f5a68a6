r"""One quark line with n gluons and an off-shell vector boson decaying to leptons: V + n jets.

Usage::

    from forward.amplitudes import vector_boson_line_sums, neutral_current_couplings
    # q(k0) q̄(k1) ℓ⁻(k2) ℓ⁺(k3) g(k4) ..., all outgoing (incoming partons as -p)
    sums = vector_boson_line_sums(k)                      # (N, 2, 2), per chirality
    c = neutral_current_couplings(q2, 2, 11, alpha=1 / 128.0)   # (N, 2, 2), complex
    me2 = (sums * c.abs() ** 2).sum((-1, -2)) * g_s ** (2 * n)

**Recursion.** The colour-ordered amplitude A(q, σ_1, …, σ_n, q̄; V) of one quark line
with the gluons in colour order and a colour-neutral vector current V^μ (momentum
q_V = k_f + k_f̄, the lepton current ⟨f|γ^μ|f̄] or ⟨f̄|γ^μ|f]) attached anywhere along
the line extends the quark-line recursion of :mod:`forward.amplitudes.quark_gluons`
(the same gluon currents J, vertex and propagator factors c = -1/√2, X, Y) by a second
set of off-shell spinors v_j, the line after gluons 1..j **and** the vector:

.. math:: u_0 = λ_q,\quad u_j = \frac{c\, Y(K_j)}{K_j^2} \sum_{i<j} X(J(i{+}1..j))\, u_i,

    v_j = \frac{Y(K_j + q_V)}{(K_j + q_V)^2}\Big[c \sum_{i<j} X(J(i{+}1..j))\, v_i
          + X(V)\, u_j\Big],

    A_L = λ̃_{q̄}^T\Big[c \sum_{i<n} X(J(i{+}1..n))\, v_i + X(V)\, u_n\Big],

with K_j = k_q + P_{1..j}. The vector vertex carries unit coupling (its factor -i e …
is common to all diagrams and sits in the couplings below). A_L is the left-handed
line (outgoing quark helicity -, antiquark +); A_R runs the same recursion from the
antiquark with the gluons reversed. For n = 0, A_L = ⟨q|γ^μ|q̄] V_μ.

**Couplings and |M|².** For massless fermions the γ*, Z and W exchanges share this
Lorentz structure, so with the lepton current of chirality Y the amplitude is
M_{XY}(σ, h) = c_{XY}(q²) A_{XY}(σ, h) with

* γ*/Z (:func:`neutral_current_couplings`): c_{XY} = e² [Q_q Q_ℓ + κ g_{qX} g_{ℓY}
  χ_Z] / q², χ_Z = q²/(q² - M_Z² + i q² Γ_Z/M_Z) (running width), g_L = v + a,
  g_R = v - a, κ of :mod:`forward.processes.electroweak`;
* W (:func:`charged_current_couplings`): c_{LL} = e² |V_{ij}| / (2 sin²θ_W) /
  (q² - M_W² + i q² Γ_W/M_W), all other chiralities zero.

Σ_colours,helicities |M|² = g_s^{2n} Σ_{XY} |c_{XY}|² S_{XY} with the line sums
S_{XY} = Σ_h Σ_{στ} A_{σ,XY}(h) C_{στ} A_{τ,XY}(h)^* (:func:`vector_boson_line_sums`;
C the quark-line colour matrix of :func:`forward.amplitudes.quark_line_colour_matrix`,
C = N for n = 0). S depends only on which legs are the quark and the antiquark, not on
their flavours, so one S serves every flavour of a channel. All results are **summed**
(not averaged) over colours and helicities.

Tested (``tests/test_vector_boson_amplitudes.py``): n = 0 against the hand-written
Drell–Yan |M|² (:mod:`forward.processes.drell_yan`) to 1e-10; n = 1 against Dirac traces
with 4×4 γ matrices (two Feynman diagrams, lepton tensor) to 1e-10, and against the
textbook q q̄ → V g and (crossed) q g → V q with the V polarisation sum; the Ward identity
(ε_g → k_g gives 0) for n = 1..3.
"""

from __future__ import annotations

import itertools
import math

import torch

from forward._validation import check_event_momenta, check_finite
from forward.amplitudes.colour import MAX_QUARK_LINE_GLUONS, quark_line_colour_matrix
from forward.amplitudes.gluons import _plan_configurations, check_gluon_momenta
from forward.amplitudes.quark_gluons import _C, _apply_x, _apply_y
from forward.amplitudes.recursion import _berends_giele
from forward.amplitudes.spinors import complex_dtype, polarisation_vectors, sandwich, spinors

__all__ = [
    "MAX_VECTOR_BOSON_GLUONS",
    "charged_current_couplings",
    "current_amplitudes",
    "neutral_current_couplings",
    "vector_boson_amplitudes",
    "vector_boson_line_sums",
    "vector_boson_me2",
]

#: the largest number of gluons on the quark line with a vector boson
MAX_VECTOR_BOSON_GLUONS = MAX_QUARK_LINE_GLUONS


def _msq(k: torch.Tensor) -> torch.Tensor:
    """K² over the leading component axis (4, ...)."""
    return k[0] ** 2 - (k[1:] ** 2).sum(0)


def _line_with_vector(lam_start, k_start, lamt_end, cur, mom_of, n, vec, q_vec):
    """One chirality of the quark line with the vector inserted (module docstring).

    lam_start, lamt_end (2, *batch); k_start, q_vec, vec (4, *batch); cur[L], mom_of[L]
    (4, n-L+1, *batch) of the gluons in line order (unused for n = 0).
    """
    u = [lam_start]
    v = []
    for j in range(n + 1):
        if j >= 1:
            big_k = k_start + mom_of[j][:, 0]
            acc = sum(_apply_x(cur[j - i][:, i], u[i]) for i in range(j))
            u.append(_C * _apply_y(big_k, acc) / _msq(big_k))
        if j == n:
            break
        acc = _apply_x(vec, u[j])
        if j >= 1:
            acc = acc + _C * sum(_apply_x(cur[j - i][:, i], v[i]) for i in range(j))
        big_k = k_start + q_vec + (mom_of[j][:, 0] if j >= 1 else 0.0)
        v.append(_apply_y(big_k, acc) / _msq(big_k))
    acc = _apply_x(vec, u[n])
    if n >= 1:
        acc = acc + _C * sum(_apply_x(cur[n - i][:, i], v[i]) for i in range(n))
    return (lamt_end * acc).sum(0)


def _check_count(n: int) -> None:
    if n > MAX_VECTOR_BOSON_GLUONS:
        raise ValueError(f"momenta: at most {MAX_VECTOR_BOSON_GLUONS} gluons on the quark line "
                         f"with a vector boson, got {n}")


def current_amplitudes(
    momenta: torch.Tensor,
    vector_momentum: torch.Tensor,
    currents: torch.Tensor,
    leg_orders: torch.Tensor,
    helicities: torch.Tensor,
    *,
    max_batch: int | None = None,
    gluon_polarisations: torch.Tensor | None = None,
) -> torch.Tensor:
    """Colour-ordered A(q, σ, q̄; V) for given vector currents V (module docstring).

    Args:
        momenta: outgoing massless momenta (N, 2 + n, 4) in GeV as (q, q̄, g_1, ...,
            g_n), float32/float64, 0 <= n <= :data:`MAX_VECTOR_BOSON_GLUONS`; with the
            vector, Σ = 0 (incoming partons as -p).
        vector_momentum: outgoing momentum q_V of the vector, shape (N, 4) in GeV
            (off shell).
        currents: m vector currents or polarisation vectors per point, shape (N, m, 4),
            complex (complex128 with float64 momenta, complex64 with float32), upper
            index; any vectors (e.g. q_V itself, for a current-conservation check).
        leg_orders: gluon orderings (n_orderings, n), int64 (σ_1 next to the quark).
        helicities: gluon helicities ±1 (n_helicities, n), int64.
        max_batch: points × configurations at once (None: 4096 on a CPU, 2^20 on CUDA).
        gluon_polarisations: replaces the gluon polarisation vectors, shape (N, n, 2, 4)
            complex ([..., 0, :] for helicity -, [..., 1, :] for +); e.g. a gluon's
            momentum for the Ward identity. Default ε_±(k_i; k_q).

    Returns:
        Shape (N, n_orderings, n_helicities, 2, m), complex, in GeV^(1-n) per unit of
        the current; axis 3 is the quark chirality [L, R]. Gluon polarisations
        ε_±(k_i; k_q).

    Raises:
        TypeError, ValueError: bad shapes or dtypes, NaN/inf, n out of range, orders or
            helicities (naming the argument).
    """
    check_event_momenta("momenta", momenta, "m")
    cdt = complex_dtype(momenta.dtype)
    check_finite("momenta", momenta)
    if momenta.shape[1] < 2:
        raise ValueError(f"momenta: expected shape (N, 2 + n, 4) as (q, q̄, g_1, ...), got "
                         f"{tuple(momenta.shape)}")
    n_pts, n = momenta.shape[0], momenta.shape[1] - 2
    _check_count(n)
    if (not isinstance(vector_momentum, torch.Tensor)
            or vector_momentum.shape != (n_pts, 4)
            or vector_momentum.dtype != momenta.dtype):
        got = (f"{vector_momentum.dtype} {tuple(vector_momentum.shape)}"
               if isinstance(vector_momentum, torch.Tensor) else type(vector_momentum).__name__)
        raise ValueError(f"vector_momentum: expected a {momenta.dtype} tensor of shape "
                         f"({n_pts}, 4), got {got}")
    check_finite("vector_momentum", vector_momentum)
    if (not isinstance(currents, torch.Tensor) or currents.dtype != cdt
            or currents.ndim != 3 or currents.shape[0] != n_pts or currents.shape[2] != 4):
        got = (f"{currents.dtype} {tuple(currents.shape)}"
               if isinstance(currents, torch.Tensor) else type(currents).__name__)
        raise ValueError(f"currents: expected a {cdt} tensor of shape ({n_pts}, m, 4), "
                         f"got {got}")
    device = momenta.device
    legs, hel_index, pt_chunk, conf_chunk = _plan_configurations(
        leg_orders, helicities, n, n_pts, device, max_batch)
    n_ord, n_hel = leg_orders.shape[0], helicities.shape[0]
    n_conf, n_cur = legs.shape[0], currents.shape[1]
    kq, kqb, kg = momenta[:, 0], momenta[:, 1], momenta[:, 2:]
    lq, ltq = spinors(kq)
    lqb, ltqb = spinors(kqb)
    if gluon_polarisations is None:
        eps_all = polarisation_vectors(kg, kq.unsqueeze(1).expand_as(kg)) if n else None
    elif (not isinstance(gluon_polarisations, torch.Tensor)
          or gluon_polarisations.shape != (n_pts, n, 2, 4) or gluon_polarisations.dtype != cdt):
        raise ValueError(f"gluon_polarisations: expected a {cdt} tensor of shape "
                         f"({n_pts}, {n}, 2, 4), got {gluon_polarisations!r:.80}")
    else:
        eps_all = gluon_polarisations
    out = torch.empty(n_pts, n_conf, 2, n_cur, dtype=cdt, device=device)

    def first(t, shape):  # (N, k) -> (k, N, C)
        return t.unsqueeze(1).expand(*shape, t.shape[-1]).movedim(-1, 0)

    for p0 in range(0, n_pts, pt_chunk):
        sl = slice(p0, p0 + pt_chunk)
        for c0 in range(0, n_conf, conf_chunk):
            lg, hx = legs[c0:c0 + conf_chunk], hel_index[c0:c0 + conf_chunk]
            shape = (lq[sl].shape[0], lg.shape[0])
            la, lat, lb, lbt = (first(t[sl], shape) for t in (lq, ltq, lqb, ltqb))
            ka, kb, qv = (first(t[sl].to(cdt), shape) for t in (kq, kqb, vector_momentum))
            if n:
                mom = kg[sl][:, lg].to(cdt).movedim((-1, -2), (0, 1))  # (4, n, N, C)
                eps = eps_all[sl][:, lg, hx].movedim((-1, -2), (0, 1))
                cur, mom_of, _ = _berends_giele(mom, eps, amputate_last=False)
                cur_r, mom_r, _ = _berends_giele(mom.flip(1), eps.flip(1), amputate_last=False)
            else:
                cur = mom_of = cur_r = mom_r = None
            for m in range(n_cur):
                vec = first(currents[sl, m], shape)
                amp_l = _line_with_vector(la, ka, lbt, cur, mom_of, n, vec, qv)
                amp_r = _line_with_vector(lb, kb, lat, cur_r, mom_r, n, vec, qv)
                out[sl, c0:c0 + conf_chunk, :, m] = torch.stack([amp_l, amp_r], -1)
    return out.reshape(n_pts, n_ord, n_hel, 2, n_cur)


def _check_lepton_level(momenta: torch.Tensor) -> int:
    check_event_momenta("momenta", momenta, "m")
    complex_dtype(momenta.dtype)
    check_finite("momenta", momenta)
    if momenta.shape[1] < 4:
        raise ValueError(f"momenta: expected shape (N, 4 + n, 4) as (q, q̄, f, f̄, g_1, ...), "
                         f"got {tuple(momenta.shape)}")
    check_gluon_momenta(momenta)  # massless, Σ = 0, no vanishing s_ij
    n = momenta.shape[1] - 4
    _check_count(n)
    return n


def vector_boson_amplitudes(
    momenta: torch.Tensor,
    leg_orders: torch.Tensor,
    helicities: torch.Tensor,
    *,
    max_batch: int | None = None,
) -> torch.Tensor:
    """A(q, σ, q̄; f f̄) with the lepton current of both chiralities, unit couplings.

    Args:
        momenta: outgoing massless momenta (N, 4 + n, 4) in GeV as (q, q̄, f, f̄, g_1,
            ..., g_n), Σ = 0, float32/float64 (f: the outgoing fermion, e.g. ℓ⁻ or ν;
            f̄ the antifermion; incoming partons as -p), 0 <= n <= 5. Checked with
            :func:`forward.amplitudes.check_gluon_momenta` (massless, conserved, no
            vanishing invariant).
        leg_orders: gluon orderings (n_orderings, n), int64.
        helicities: gluon helicities (n_helicities, n), int64 ±1.
        max_batch: see :func:`current_amplitudes`.

    Returns:
        Shape (N, n_orderings, n_helicities, 2, 2), complex, in GeV^(2-n): axis 3 the
        quark chirality X, axis 4 the lepton chirality Y ([L, R]: L = ⟨f|γ^μ|f̄], R =
        ⟨f̄|γ^μ|f]), without couplings or the boson propagator.

    Raises:
        TypeError, ValueError: bad momenta (NaN, off shell, collinear or soft pairs),
            orders or helicities.
    """
    _check_lepton_level(momenta)
    lf, ltf = spinors(momenta[:, 2])
    la, lta = spinors(momenta[:, 3])
    currents = torch.stack([sandwich(lf, lta), sandwich(la, ltf)], 1)  # (N, 2, 4)
    partons = torch.cat([momenta[:, :2], momenta[:, 4:]], 1)
    return current_amplitudes(partons, momenta[:, 2] + momenta[:, 3], currents, leg_orders,
                              helicities, max_batch=max_batch)


def vector_boson_line_sums(
    momenta: torch.Tensor, *, nc: int = 3, max_batch: int | None = None
) -> torch.Tensor:
    """S_{XY} = Σ_{gluon helicities} Σ_{στ} A_σ C_{στ} A_τ^* per quark and lepton chirality.

    Args:
        momenta: as for :func:`vector_boson_amplitudes`, (N, 4 + n, 4), 0 <= n <= 5.
        nc: number of colours N.
        max_batch: see :func:`current_amplitudes`.

    Returns:
        Shape (N, 2, 2), real, in GeV^(4-2n) (times |c_XY|² in GeV⁻⁴ it gives |M|²);
        summed over the colours and the gluon helicities.
    """
    n = _check_lepton_level(momenta)
    if n:
        orders = torch.tensor(list(itertools.permutations(range(n))), dtype=torch.int64)
        cmat = quark_line_colour_matrix(n, nc)
    else:
        if isinstance(nc, bool) or not isinstance(nc, int) or nc < 2:
            raise ValueError(f"nc: expected an integer number of colours >= 2, got {nc!r}")
        orders = torch.zeros(1, 0, dtype=torch.int64)
        cmat = torch.full((1, 1), float(nc), dtype=torch.float64)
    hel = torch.tensor(list(itertools.product((-1, 1), repeat=n)),
                       dtype=torch.int64).reshape(2**n, n)
    amps = vector_boson_amplitudes(momenta, orders, hel, max_batch=max_batch)
    cmat = cmat.to(dtype=momenta.dtype, device=momenta.device)
    re, im = amps.real, amps.imag
    return (torch.einsum("nshxy,st,nthxy->nxy", re, cmat, re)
            + torch.einsum("nshxy,st,nthxy->nxy", im, cmat, im))


def _as_real(name: str, value, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if not bool((torch.isfinite(t) & (t >= 0)).all()):
        raise ValueError(f"{name}: expected finite values >= 0, got {value!r}")
    return t


def _check_q2(q2) -> torch.Tensor:
    if not isinstance(q2, torch.Tensor) or not q2.is_floating_point() or q2.ndim != 1:
        got = f"{q2.dtype} {tuple(q2.shape)}" if isinstance(q2, torch.Tensor) else type(
            q2).__name__
        raise ValueError(f"q2: expected a floating tensor of shape (N,) in GeV², got {got}")
    if not bool((torch.isfinite(q2) & (q2 > 0)).all()):
        raise ValueError("q2: expected finite invariant masses squared > 0 GeV²")
    return q2


def _chiral(pid: int) -> tuple[float, float]:
    from forward.processes.electroweak import axial_coupling, vector_coupling

    v, a = vector_coupling(pid), axial_coupling(pid)
    return (v + a, v - a)


def neutral_current_couplings(
    q2: torch.Tensor,
    quark_pid: int,
    lepton_pid: int,
    alpha: torch.Tensor | float,
    *,
    z_mass: float | None = None,
    z_width: torch.Tensor | float = 2.50419,
    mode: str = "gamma_z",
) -> torch.Tensor:
    """γ*/Z couplings c_{XY}(q²) = e² [Q_q Q_ℓ + κ g_{qX} g_{ℓY} χ_Z(q²)] / q² (module docstring).

    Args:
        q2: lepton-pair mass squared q² in GeV², shape (N,), > 0.
        quark_pid: PDG id of the quark line's flavour (|id| 1..6; sign ignored).
        lepton_pid: PDG id of the lepton (|id| 11..16; sign ignored).
        alpha: α_EM, a number or shape (N,).
        z_mass: M_Z in GeV (default :data:`forward.processes.electroweak.MZ`).
        z_width: Γ_Z in GeV (default the SM width of :func:`forward.processes.electroweak.z_width`).
        mode: ``"gamma_z"`` (γ* + Z with interference), ``"gamma"`` (γ* only) or ``"z"``
            (Z only): Pythia's ``WeakZ0:gmZmode`` 0, 1, 2.

    Returns:
        Shape (N, 2, 2), complex, in GeV⁻²: [quark chirality X, lepton chirality Y].

    Raises:
        ValueError: unknown pids or mode, q² not > 0, negative α or width.
    """
    from forward._validation import check_choice
    from forward.processes.electroweak import MZ, charge, kappa

    q2 = _check_q2(q2)
    check_choice("mode", mode, ("gamma_z", "gamma", "z"))
    for name, pid, allowed in (("quark_pid", quark_pid, (1, 2, 3, 4, 5, 6)),
                               ("lepton_pid", lepton_pid, (11, 12, 13, 14, 15, 16))):
        if isinstance(pid, bool) or not isinstance(pid, int) or abs(pid) not in allowed:
            raise ValueError(f"{name}: expected a PDG id with |id| in {allowed}, got {pid!r}")
    mz = MZ if z_mass is None else float(z_mass)
    if not (math.isfinite(mz) and mz > 0):
        raise ValueError(f"z_mass: expected a finite mass > 0 in GeV, got {z_mass!r}")
    width = _as_real("z_width", z_width, q2)
    e2 = 4.0 * math.pi * _as_real("alpha", alpha, q2)
    chi = q2 / torch.complex(q2 - mz * mz, q2 * width / mz)
    gq, gl = _chiral(quark_pid), _chiral(lepton_pid)
    qq = charge(quark_pid) * charge(lepton_pid)
    use_gamma = 0.0 if mode == "z" else 1.0
    use_z = 0.0 if mode == "gamma" else 1.0
    rows = [torch.stack([use_gamma * qq + use_z * kappa() * gq[x] * gl[y] * chi
                         for y in range(2)], -1) for x in range(2)]
    return (e2 / q2).unsqueeze(-1).unsqueeze(-1) * torch.stack(rows, -2)


def charged_current_couplings(
    q2: torch.Tensor,
    ckm: float,
    alpha: torch.Tensor | float,
    *,
    w_mass: float | None = None,
    w_width: torch.Tensor | float = 2.085,
) -> torch.Tensor:
    """W couplings: c_{LL} = e² |V| / (2 sin²θ_W) / (q² - M_W² + i q² Γ_W/M_W), others 0.

    Args:
        q2: lepton-pair mass squared in GeV², shape (N,), > 0.
        ckm: |V_ij| of the quark line (1 for a lepton-only check), >= 0.
        alpha: α_EM, a number or shape (N,).
        w_mass: M_W in GeV (default :data:`forward.processes.electroweak.MW`).
        w_width: Γ_W in GeV (default 2.085, Pythia's ``24:mWidth``).

    Returns:
        Shape (N, 2, 2), complex, in GeV⁻² (only [0, 0], both lines left-handed).
    """
    from forward.processes.electroweak import MW, SIN2_THETA_W

    q2 = _check_q2(q2)
    mw = MW if w_mass is None else float(w_mass)
    if not (math.isfinite(mw) and mw > 0):
        raise ValueError(f"w_mass: expected a finite mass > 0 in GeV, got {w_mass!r}")
    v = float(ckm)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"ckm: expected a finite |V_ij| >= 0, got {ckm!r}")
    width = _as_real("w_width", w_width, q2)
    e2 = 4.0 * math.pi * _as_real("alpha", alpha, q2)
    prop = 1.0 / torch.complex(q2 - mw * mw, q2 * width / mw)
    out = torch.zeros(q2.shape[0], 2, 2, dtype=prop.dtype, device=q2.device)
    out[:, 0, 0] = e2 * v / (2.0 * SIN2_THETA_W) * prop
    return out


def vector_boson_me2(
    momenta: torch.Tensor,
    couplings: torch.Tensor,
    *,
    nc: int = 3,
    g_s: torch.Tensor | float = 1.0,
    max_batch: int | None = None,
) -> torch.Tensor:
    """|M|² of q q̄ → V(→ f f̄) + n gluons summed over colours and helicities, full colour.

    Args:
        momenta: outgoing momenta (N, 4 + n, 4) in GeV as (q, q̄, f, f̄, g_1, ..., g_n),
            see :func:`vector_boson_amplitudes`.
        couplings: c_{XY} of shape (N, 2, 2) or (2, 2), complex, in GeV⁻²
            (:func:`neutral_current_couplings`, :func:`charged_current_couplings`).
        nc: number of colours.
        g_s: strong coupling, a number or a tensor broadcastable to (N,).
        max_batch: see :func:`current_amplitudes`.

    Returns:
        Shape (N,), real, in GeV^(-2n) (dimensionless for n = 0).
    """
    sums = vector_boson_line_sums(momenta, nc=nc, max_batch=max_batch)
    if not isinstance(couplings, torch.Tensor) or couplings.shape[-2:] != (2, 2):
        got = tuple(couplings.shape) if isinstance(couplings, torch.Tensor) else type(
            couplings).__name__
        raise ValueError(f"couplings: expected a complex tensor of shape (N, 2, 2), got {got}")
    weight = (couplings.real**2 + couplings.imag**2).to(sums.dtype)
    n = momenta.shape[1] - 4
    g = torch.as_tensor(g_s, dtype=momenta.dtype, device=momenta.device)
    return (sums * weight).sum((-1, -2)) * g ** (2 * n)
