r"""Our samplers against MadSpace 0.2.1 (MadGraph 7's phase-space library) on our |M|².

**How deep madspace runs with our |M|².** madspace takes matrix elements only through
UMAMI: ``MatrixElement`` (a compute-graph node) calls a shared library loaded by
``Context.load_matrix_element(file, param_card)`` that exports the C symbols of
``umami.h`` (in MadGraph, its cudacpp output). Every other piece (``Mapping`` and
``FunctionGenerator`` subclasses, also those written in Python) only records
instructions of madspace's fixed instruction set (``FunctionBuilder``) into a graph its
C++ runtime executes; no instruction calls back into Python. So a torch |M|² enters
only through a UMAMI library whose ``umami_matrix_element`` calls a Python function:
:data:`UMAMI_SHIM_C`, compiled at run time (needs ``cc``), forwards it to a ctypes
callback (:class:`UmamiMatrixElement`). With it, three levels run here:

- ``madspace-integrand`` (deepest): madspace's complete compiled ``Integrand`` (its
  random numbers, VEGAS grid, phase-space mapping, cuts, PDF interpolation, scale,
  flux, pb conversion and flavour sampling) with only |M|² from us
  (:class:`MadspaceIntegrand`), called from Python one batch at a time.
- ``madspace-vegas``: madspace's ``VegasMapping`` and ``PhaseSpaceMapping`` from
  Python, then our :class:`forward.integrand.HadronicIntegrand` (PDFs × |M|² × flux ×
  cuts) in torch (:class:`MadspaceMap`, :class:`MadspaceVegas`);
- ``madspace-flat``: the same mapping without VEGAS.

What does **not** run: madspace's own driver. ``EventGenerator.survey()`` with the shim
hangs: the shim is entered (traced from C) but the callback never returns, because the
binding keeps the GIL while ``ChannelEventGenerator`` evaluates the integrand on its
thread pool, whose worker then waits for the GIL forever (``FunctionRuntime.call``, used
here, runs on the calling thread and works). So madspace's survey/VEGAS schedule,
its buffered unweighting and its output files are not compared; VEGAS rounds and the
unweighting (:func:`forward.nis.unweight`, 0.1 % overweight) are driven here, the same
way for every method. madspace 0.2.1's ``VegasGridOptimizer.add_data`` cannot be called
from Python either (see :class:`MadspaceVegas`): the grid refinement is
:func:`vegas_rebin` on madspace's ``VegasHistogram`` statistics, written into
madspace's grid in place, with its damping 0.2. MadNIS: an ``Integrand`` with
``madnis_training=True`` (for ``MadnisTraining``) could not be built from these pieces
(``RuntimeError: bad optional access``, for Drell–Yan and for gg → ggg), so madspace's
flows are not in the table.

**Conventions matched** (checked in ``tests/test_benchmark_madspace.py``):

- momenta: madspace's ``momenta`` are (batch, 2 + n, 4) as (E, px, py, pz) in GeV in
  the lab frame, the two incoming partons first (beam 1 along +z with x1 √s/2), then
  the outgoing ones in the order of the mapping's masses; we keep ``momenta[:, 2:]``
  in the process's ``final_state`` order (ℓ⁻ ℓ⁺; g g g: massless, symmetric). Inside
  UMAMI the buffer is component-major, ``p[(mu * n + j) * stride + i]``.
- measure: the mapping's Jacobian ``det`` is w.r.t. dx1 dx2 dΦ_n with the (2π) factors,
  our dμ (a massless 2 → 2 leptonic map averages to 1/(8π)); points it marks
  unphysical (det = 0) get weight 0.
- integrand inside madspace: PDFs from ``PdfGrid`` on the same LHAPDF member file as
  ours; μ_F = √ŝ for Drell–Yan and H_T/2 for jets (``EnergyScale`` partonic_energy and
  half_transverse_mass; our ``jets`` runs with ``scale="ht"`` here for that reason);
  madspace's α_s input is ignored (our |M|² uses our α_s(μ_R)); our cuts are applied
  in the callback (|M|² = 0 outside), madspace's p_T / |η| cuts shape its sampling.
  madspace keeps the LO set's negative x·f (s, s̄ at large x; −0.2 % of σ for
  Drell–Yan, a −2.2σ pull over 200k points before the fix), ours sets them to zero as
  Pythia 8: ``madspace-integrand`` weights are clamped at zero, which is that
  convention event by event (|M|² ≥ 0 and only one x can be large); rows carry
  ``negative_weight_fraction``.

Mappings: Drell–Yan (``drell-yan``, 60 < m_ℓℓ < 120 GeV) uses the s-channel topology
q q̄ → Z → ℓℓ with the Z's Breit–Wigner and the m_ℓℓ window as the propagator's energy
window; ``jets-3`` (``jets``, n_jets = 3, ``gg>ggg``, p_T > 50 GeV, |η| < 4.5,
ΔR > 0.4, μ = H_T/2) uses madspace's CHILI mapping with the p_T and η cuts folded into
the sampling. Our methods, at the same training calls and evaluation points:
``ours-vegas`` (:class:`forward.nis.VegasMap` on our first map of
``process.phase_space()``, same rounds and bins), ``ours-multichannel``
(:func:`forward.nis.fit_multichannel` over all our maps) and ``ours-flow``
(:func:`forward.nis.fit`, VEGAS warm start + flow, on our first map).

Reported per method (medians over seeds): unweighting efficiency ⟨|w|⟩/w_max at 0.1 %
overweight, unweighted events per second of wall time in the generation phase
(weights of ``n_eval`` fresh points + unweighting) and including training, σ ± error
in pb and its pull against the baseline run with the same seed, and ratios of
efficiency and rate against the baselines ``madspace-vegas`` and ``madspace-flat``.
All on one CPU thread (torch and the madspace ``Context``). madspace's Integrand draws
its random numbers from its own generator (not seeded from here).

    OMP_NUM_THREADS=1 python3 benchmarks/madspace.py --quick
    OMP_NUM_THREADS=1 python3 benchmarks/madspace.py --problems drell-yan --budget 100000 \\
        --n-eval 200000 --seeds 3 --out benchmarks/results/madspace_drell-yan.json

madspace stays a benchmark-only dependency (``pip install madspace==0.2.1``); it is
never imported by ``forward`` or ``invsim``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

if __name__ == "__main__":
    # run as a script, this file's folder heads sys.path and would shadow the madspace
    # package by this module's own name
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import torch  # noqa: E402

from forward.events import HardEvents  # noqa: E402
from forward.integrand import HadronicIntegrand  # noqa: E402
from forward.nis import (  # noqa: E402
    MultiChannelConfig,
    NISConfig,
    VegasMap,
    fit,
    fit_multichannel,
    hadronic_channels,
    unweight,
)

__all__ = [
    "BASELINES",
    "METHODS",
    "PROBLEMS",
    "MadspaceIntegrand",
    "MadspaceMap",
    "MadspaceVegas",
    "UMAMI_SHIM_C",
    "UmamiMatrixElement",
    "build_umami_shim",
    "main",
    "madspace_map",
    "run_one",
    "summarise",
    "vegas_rebin",
]

METHODS = ("madspace-flat", "madspace-vegas", "madspace-integrand", "ours-vegas",
           "ours-multichannel", "ours-flow")
#: methods the ratios are taken against
BASELINES = ("madspace-vegas", "madspace-flat")
PROBLEMS = ("drell-yan", "jets-3")
OVERWEIGHT = 1e-3
VEGAS_BINS = 64
VEGAS_ROUNDS = 10
#: madspace's GeneratorConfig().vegas_damping
MADSPACE_DAMPING = 0.2


def _process(problem: str):
    from forward.processes import get_process

    if problem == "drell-yan":
        return get_process("drell-yan")
    if problem == "jets-3":
        return get_process("jets", n_jets=3, channels="gg>ggg", scale="ht")
    raise ValueError(f"problem: expected one of {PROBLEMS}, got {problem!r}")


def _context(threads: int = 1):
    import madspace as ms

    return ms.Context(threads)


def madspace_map(problem: str, process):
    """madspace's ``PhaseSpaceMapping`` for one of :data:`PROBLEMS`.

    Args:
        problem: ``"drell-yan"`` or ``"jets-3"``.
        process: the matching process (its √s, window and cuts are read).

    Returns:
        A ``madspace.PhaseSpaceMapping`` (hadronic: 2 random numbers for x1, x2 and ŝ).
    """
    import madspace as ms

    sqrt_s = float(process.sqrt_s)
    if problem == "drell-yan":
        from forward.processes.electroweak import MZ, z_width

        lr = ms.LineRef
        prop = ms.Propagator(MZ, float(z_width()), 0, float(process.mll_min),
                             float(process.mll_max), 23)
        diagram = ms.Diagram([0.0, 0.0], [0.0, 0.0], [prop],
                             [[lr("i0"), lr("i1"), lr("p0")], [lr("p0"), lr("o0"), lr("o1")]])
        return ms.PhaseSpaceMapping(ms.Topology(diagram), sqrt_s)
    if problem == "jets-3":
        n = len(process.final_state)
        obs = ms.Observable.ObservableOption
        pids = [21] * (n + 2)  # all external legs, the beams first (ignored by the cut)
        items = [ms.CutItem(ms.Observable(pids, obs.obs_pt, [[21]]), float(process.pt_min))]
        if process.eta_max is not None:
            items.append(ms.CutItem(ms.Observable(pids, obs.obs_eta_abs, [[21]]),
                                    max=float(process.eta_max)))
        cuts = ms.Cuts(items)
        return ms.PhaseSpaceMapping([0.0] * (n + 2), sqrt_s,
                                    mode=ms.PhaseSpaceMapping.TChannelMode.chili, cuts=cuts)
    raise ValueError(f"problem: expected one of {PROBLEMS}, got {problem!r}")


def _tensors(outputs) -> list[torch.Tensor]:
    return [torch.from_dlpack(o) for o in outputs]


def vegas_rebin(edges: torch.Tensor, values: torch.Tensor, counts: torch.Tensor,
                damping: float = MADSPACE_DAMPING) -> torch.Tensor:
    """One VEGAS grid refinement (Lepage 1978) from per-bin sums of squared weights.

    Per dimension: mean of w² per bin, smoothed over neighbouring bins (3-bin average,
    2 at the ends, as madspace), normalised to r_i, damped to ((1 − r_i) / −ln r_i)^α,
    then new edges that give every bin the same share of the damped amounts.

    Args:
        edges: grid edges, shape (d, bins + 1), float64, rows increasing from 0 to 1.
        values: Σ w² per bin, shape (d, bins).
        counts: points per bin, shape (d, bins).
        damping: exponent α.

    Returns:
        New edges, shape (d, bins + 1).
    """
    if edges.dim() != 2 or values.shape != (edges.shape[0], edges.shape[1] - 1):
        raise ValueError(f"values: expected shape {(edges.shape[0], edges.shape[1] - 1)} "
                         f"for edges {tuple(edges.shape)}, got {tuple(values.shape)}")
    avg = values / counts.clamp(min=1).to(values.dtype)
    smooth = avg.clone()
    smooth[:, 1:-1] = (avg[:, :-2] + avg[:, 1:-1] + avg[:, 2:]) / 3.0
    smooth[:, 0] = (avg[:, 0] + avg[:, 1]) / 2.0
    smooth[:, -1] = (avg[:, -2] + avg[:, -1]) / 2.0
    new = edges.clone()
    bins = values.shape[1]
    for i in range(edges.shape[0]):
        total = float(smooth[i].sum())
        if not total > 0:
            continue
        r = (smooth[i] / total).clamp(min=1e-10)
        d = torch.where(r < 1 - 1e-8, ((1 - r) / -torch.log(r)) ** damping, r)
        cum = torch.cat([d.new_zeros(1), d.cumsum(0)])
        targets = cum[-1] * torch.arange(1, bins, dtype=d.dtype) / bins
        j = (torch.searchsorted(cum, targets) - 1).clamp(0, bins - 1)
        e = edges[i]
        new[i, 1:-1] = e[j] + (targets - cum[j]) / d[j] * (e[j + 1] - e[j])
    return new


class MadspaceVegas:
    """madspace's VEGAS grid (``VegasMapping``) with its ``VegasHistogram`` statistics.

    madspace 0.2.1's ``VegasGridOptimizer.add_data`` cannot be called from Python: its
    binding converts ``values`` as a batch of floats (n,) and ``counts`` as an
    (n, dims) float array, while the C++ reads both as (1, dims, bins) (double and
    int64); every call fails with a dtype or shape error, or ``std::bad_alloc``. The
    refinement step is therefore :func:`vegas_rebin`, written into madspace's grid
    global in place (the ``Context`` shares it through DLPack), with madspace's damping.

    Args:
        dims: dimension of the cube.
        bins: bins per dimension.
        context: the madspace ``Context`` the grid global lives in.
        name: prefix of the grid's global name (unique per context).
        damping: VEGAS damping exponent (madspace's default 0.2).
    """

    def __init__(self, dims: int, bins: int, context, name: str,
                 damping: float = MADSPACE_DAMPING) -> None:
        import madspace as ms

        self.dims = dims
        self.damping = damping
        self.mapping = ms.VegasMapping(dims, bins, name)
        self.mapping.initialize_globals(context)
        self._grid = torch.from_dlpack(context.get_global(self.mapping.grid_name()))
        self._forward = ms.FunctionRuntime(self.mapping.forward_function(), context)
        self._hist = ms.FunctionRuntime(ms.VegasHistogram(dims, bins).function(), context)
        self._values = torch.zeros(dims, bins, dtype=torch.float64)
        self._counts = torch.zeros(dims, bins, dtype=torch.int64)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cube points u (n, d) float64 → grid points (n, d) and Jacobian (n,)."""
        x, det = _tensors(self._forward.call([u.contiguous()]))
        return x, det

    def add_data(self, u: torch.Tensor, weights: torch.Tensor) -> None:
        """Accumulate (madspace's ``VegasHistogram``) the weights f/q (n,) of latent u (n, d)."""
        values, counts = _tensors(self._hist.call([u.contiguous(), weights.contiguous()]))
        self._values += values[0]
        self._counts += counts[0]

    def optimize(self) -> None:
        """Refine the grid from the data added since the last call."""
        self._grid[0] = vegas_rebin(self._grid[0], self._values, self._counts, self.damping)
        self._values.zero_()
        self._counts.zero_()


class MadspaceMap:
    """A madspace mapping as one of our phase-space maps: ``forward(r) -> (events, log_jac)``.

    Args:
        mapping: a ``madspace.PhaseSpaceMapping`` (hadronic).
        sqrt_s: collider energy in GeV.
        context: madspace ``Context`` to run in.

    Attributes:
        dim: number of random numbers per point.
    """

    def __init__(self, mapping, sqrt_s: float, context) -> None:
        import madspace as ms

        self.dim = int(mapping.random_dim())
        self.sqrt_s = float(sqrt_s)
        self._forward = ms.FunctionRuntime(mapping.forward_function(), context)

    def momenta(self, r: torch.Tensor):
        """Cube points r (n, dim) float64 → momenta (n, 2 + k, 4), x1, x2, det (n,)."""
        return _tensors(self._forward.call([r.contiguous()]))

    def forward(self, r: torch.Tensor) -> tuple[HardEvents, torch.Tensor]:
        """Final-state events and log-Jacobian w.r.t. dx1 dx2 dΦ_n (−inf where unphysical)."""
        p, x1, x2, det = self.momenta(r)
        return HardEvents(p[:, 2:].contiguous(), x1, x2, self.sqrt_s), torch.log(det)


#: C source of the UMAMI shim: exports the UMAMI 1.0 symbols madspace resolves
#: (umami_get_meta, umami_*_inputs/outputs, umami_initialize, umami_matrix_element,
#: umami_free) and forwards every matrix-element call to one registered C function
#: pointer (a ctypes callback into Python). Enum values and signatures follow umami.h.
UMAMI_SHIM_C = r"""
#include <stddef.h>
#include <stdbool.h>
typedef int (*invsim_me_fn)(size_t count, size_t stride, size_t offset, const double* momenta,
                            const double* alpha_s, const int* flavor, double* me_out);
static invsim_me_fn g_fn = 0;
static int g_npart = 0;
static const bool in_supported[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
static const bool in_required[9] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
static const bool out_supported[6] = {1, 1, 1, 1, 1, 0};
void invsim_umami_register(invsim_me_fn fn, int npart) { g_fn = fn; g_npart = npart; }
int umami_get_meta(int key, void* result) {
    switch (key) {
    case 0: *(int*)result = 0; return 0;                       /* UMAMI_DEVICE_CPU */
    case 1: *(int*)result = g_npart; return 0;                 /* particle count */
    case 2: case 3: case 4: *(int*)result = 1; return 0;       /* diagrams, helicities, colours */
    case 5: for (int i = 0; i < g_npart; ++i) ((double*)result)[i] = 0.0; return 0;  /* masses */
    default: return 6;                                         /* UNSUPPORTED_META */
    }
}
int umami_supported_inputs(const bool** d, int* n) { *d = in_supported; *n = 9; return 0; }
int umami_required_inputs(const bool** d, int* n) { *d = in_required; *n = 9; return 0; }
int umami_supported_outputs(const bool** d, int* n) { *d = out_supported; *n = 6; return 0; }
int umami_initialize(void** handle, const char* card) {
    (void)card; if (!g_fn) return 1; *handle = (void*)&g_npart; return 0;
}
int umami_set_parameter(void* h, const char* k, double re, double im) {
    (void)h; (void)k; (void)re; (void)im; return 2;
}
int umami_get_parameter(void* h, const char* k, double* re, double* im) {
    (void)h; (void)k; (void)re; (void)im; return 2;
}
int umami_matrix_element(void* handle, size_t count, size_t stride, size_t offset, size_t n_in,
                         const int* in_keys, const void* const* inputs, size_t n_out,
                         const int* out_keys, void* const* outputs) {
    (void)handle;
    const double* p = 0; const double* as = 0; const int* fl = 0; double* me = 0;
    for (size_t i = 0; i < n_in; ++i) {
        if (in_keys[i] == 0) p = (const double*)inputs[i];
        else if (in_keys[i] == 1) as = (const double*)inputs[i];
        else if (in_keys[i] == 2) fl = (const int*)inputs[i];
    }
    for (size_t i = 0; i < n_out; ++i) {
        if (out_keys[i] == 0) me = (double*)outputs[i];
        else if (out_keys[i] == 1)
            for (size_t j = 0; j < count; ++j) ((double*)outputs[i])[offset + j] = 1.0;
        else if (out_keys[i] <= 4)
            for (size_t j = 0; j < count; ++j) ((int*)outputs[i])[offset + j] = 0;
        else return 4;
    }
    if (!p || !me || !g_fn) return 7;
    return g_fn(count, stride, offset, p, as, fl, me) ? 1 : 0;
}
int umami_free(void* handle) { (void)handle; return 0; }
"""

_ME_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double),
    ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double),
)


def build_umami_shim(directory: str) -> str:
    """Compile :data:`UMAMI_SHIM_C` into ``directory/libinvsim_umami.so`` (needs a C compiler).

    Returns:
        The path of the shared library.

    Raises:
        RuntimeError: no C compiler (``cc``/``gcc``/``clang``) on PATH, or it failed.
    """
    cc = next((c for c in (os.environ.get("CC"), "cc", "gcc", "clang") if c and shutil.which(c)),
              None)
    if cc is None:
        raise RuntimeError("building the UMAMI shim needs a C compiler (cc, gcc or clang)")
    src = os.path.join(directory, "invsim_umami.c")
    lib = os.path.join(directory, "libinvsim_umami.so")
    with open(src, "w") as fh:
        fh.write(UMAMI_SHIM_C)
    res = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", lib, src], capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{cc} failed on the UMAMI shim: {res.stderr.strip()}")
    return lib


class UmamiMatrixElement:
    """Our |M|² behind madspace's UMAMI interface, for ``Context.load_matrix_element``.

    A shim compiled into a fresh folder (one library per instance, so several can be
    loaded at once) forwards ``umami_matrix_element`` to :meth:`_evaluate`, which reads
    madspace's momenta buffer, evaluates ``process.matrix_element`` (our couplings:
    madspace's α_s input is ignored), takes the column of madspace's flavour index
    (the order of ``process.flavour_channels``) and applies ``process.cuts`` (zero
    outside). madspace's buffer is component-major: ``p[(mu * n + j) * stride + i]``
    is component mu (E, px, py, pz) of particle j (the two incoming partons first) of
    event i; it hands over lab-frame momenta, so x1, x2 = (E ± pz) / √s of the beams.

    Args:
        process: the process whose |M|² and cuts are used.
        params: its parameter values (defaults if None).

    Attributes:
        path: the shim library to pass to ``Context.load_matrix_element``.
        points: points evaluated so far.
        error: the first exception raised inside a callback (madspace then reports a
            UMAMI error), or None.
    """

    def __init__(self, process, params=None) -> None:
        self.process = process
        self.params = process.params(params)
        self.sqrt_s = float(process.sqrt_s)
        self.n_particles = len(process.final_state) + 2
        self._dir = tempfile.mkdtemp(prefix="invsim_umami_")
        self.path = build_umami_shim(self._dir)
        self._lib = ctypes.CDLL(self.path)
        self._callback = _ME_CALLBACK(self._evaluate)  # kept alive with the instance
        self._lib.invsim_umami_register(self._callback, self.n_particles)
        self.points = 0
        self.error = None

    def _evaluate(self, count, stride, offset, p, alpha_s, flavor, out) -> int:
        import numpy as np

        try:
            if count == 0:
                return 0
            n = self.n_particles
            buf = torch.from_numpy(np.ctypeslib.as_array(p, shape=(4, n, stride)))
            mom = buf[:, :, offset:offset + count].permute(2, 1, 0)
            x1 = (mom[:, 0, 0] + mom[:, 0, 3]) / self.sqrt_s
            x2 = (mom[:, 1, 0] - mom[:, 1, 3]) / self.sqrt_s
            ev = HardEvents(mom[:, 2:].contiguous(), x1, x2, self.sqrt_s)
            me = self.process.matrix_element(ev, self.params)
            if flavor:
                idx = torch.from_numpy(np.ctypeslib.as_array(flavor, shape=(stride,)))
                me = me.gather(1, idx[offset:offset + count].long().unsqueeze(1)).squeeze(1)
            else:
                me = me[:, 0]
            me = torch.where(self.process.cuts(ev), me, torch.zeros_like(me))
            res = torch.from_numpy(np.ctypeslib.as_array(out, shape=(stride,)))
            res[offset:offset + count] = me
            self.points += count
            return 0
        except Exception as e:  # noqa: BLE001 (reported through self.error, not lost in C)
            if self.error is None:
                self.error = e
            return 1


def _alpha_s_info(directory: str) -> str:
    """A constant-α_s LHAPDF ``.info`` file: madspace's Integrand requires a
    RunningCoupling, whose value only feeds the ME's α_s input, which our |M|² ignores."""
    path = os.path.join(directory, "constant_alpha_s.info")
    qs = [10 ** (k / 8) for k in range(41)]
    with open(path, "w") as fh:
        fh.write("SetDesc: constant alpha_s, unused by invsim's |M|^2\nFormat: lhagrid1\n"
                 "AlphaS_Type: ipol\n")
        fh.write("AlphaS_Qs: [" + ", ".join(f"{q:.6e}" for q in qs) + "]\n")
        fh.write("AlphaS_Vals: [" + ", ".join("0.118" for _ in qs) + "]\n")
    return path


class MadspaceIntegrand:
    """madspace's complete compiled ``Integrand`` around our |M|² (via :class:`UmamiMatrixElement`).

    Random numbers, its VEGAS grid, its phase-space mapping (:func:`madspace_map`) and
    cuts, its PDF interpolation (``PdfGrid`` on the same LHAPDF member file as ours),
    its scale (``EnergyScale``: √ŝ for Drell–Yan, H_T/2 for jets, our choices) and its
    flux and pb conversion, and its flavour sampling over ``process.flavour_channels``;
    only |M|² (with our couplings and cuts) comes from us. The VEGAS grid is refined
    from madspace's ``VegasHistogram`` by :func:`vegas_rebin` (see :class:`MadspaceVegas`).

    Args:
        problem: one of :data:`PROBLEMS`.
        process: the matching process.
        context: madspace ``Context``.
        bins: VEGAS bins per dimension.
        name: prefix of the VEGAS grid global.
    """

    def __init__(self, problem: str, process, context, bins: int = VEGAS_BINS,
                 name: str = "integrand") -> None:
        import madspace as ms

        from forward.pdf.discovery import find_member

        self.me = UmamiMatrixElement(process)
        n = self.me.n_particles
        api = context.load_matrix_element(self.me.path, "")
        mel = ms.MatrixElement(api, ms.Integrand.matrix_element_inputs,
                               ms.Integrand.matrix_element_outputs, sample_random_inputs=True)
        grid = ms.PdfGrid(str(find_member(process.pdf, 0).data_file))
        grid.initialize_globals(context)
        alpha = ms.AlphaSGrid(_alpha_s_info(self.me._dir))
        alpha.initialize_globals(context)
        coupling = ms.RunningCoupling(alpha)
        kind = ms.EnergyScale.DynamicalScaleType
        if problem == "drell-yan":
            scale = ms.EnergyScale(n, kind.partonic_energy)
        elif getattr(process, "scale", None) == "ht":
            scale = ms.EnergyScale(n, kind.half_transverse_mass)
        else:
            raise ValueError(f"problem: no madspace scale matches {problem!r} "
                             f"(scale={getattr(process, 'scale', None)!r})")
        pids = [list(ch) for ch in process.flavour_channels]
        dxs = ms.DifferentialCrossSection(mel, float(process.sqrt_s), coupling, ms.CachedScale(),
                                          pids, ms.CachedPdf(), ms.CachedPdf())
        mapping = madspace_map(problem, process)
        self.vegas = ms.VegasMapping(mapping.random_dim(), bins, name)
        self.vegas.initialize_globals(context)
        self.integrand = ms.Integrand(mapping, [dxs], adaptive_map=self.vegas, pid_options=pids,
                                      pdf_grid=grid, running_coupling=coupling,
                                      energy_scale=scale, channel_indices=[0])
        fn = self.integrand.function()
        self._keys = list(fn.outputs.keys())
        self._runtime = ms.FunctionRuntime(fn, context)
        self._grid = torch.from_dlpack(context.get_global(self.vegas.grid_name()))
        self._hist = ms.FunctionRuntime(
            ms.VegasHistogram(mapping.random_dim(), bins).function(), context)
        self._values = torch.zeros(mapping.random_dim(), bins, dtype=torch.float64)
        self._counts = torch.zeros(mapping.random_dim(), bins, dtype=torch.int64)

    def __call__(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` weighted events: ``weight`` (n,) in pb, ``momenta`` (n, 2 + k, 4), ``random`` …"""
        out = dict(zip(self._keys, _tensors(self._runtime.call([torch.tensor([n])])),
                       strict=True))
        if self.me.error is not None:
            raise RuntimeError(f"our |M|² failed inside madspace: {self.me.error!r}")
        return out

    def train(self, rounds: int, per_round: int) -> int:
        """VEGAS rounds on madspace's own events; returns the number of calls."""
        for _ in range(rounds):
            ev = self(per_round)
            values, counts = _tensors(self._hist.call([ev["random"].contiguous(),
                                                       ev["weight"].contiguous()]))
            self._grid[0] = vegas_rebin(self._grid[0], values[0], counts[0])
        return rounds * per_round


def _weights_on_map(integrand: HadronicIntegrand, ms_map: MadspaceMap, r: torch.Tensor,
                    vegas: MadspaceVegas | None = None) -> torch.Tensor:
    """Weights dσ/dμ · Jacobians (n,) in pb of cube points r through (vegas →) ms_map."""
    jac = torch.ones(r.shape[0], dtype=torch.float64)
    if vegas is not None:
        r, jac = vegas.forward(r)
    p, x1, x2, det = ms_map.momenta(r)
    w = torch.zeros_like(det)
    ok = det > 0
    if bool(ok.any()):
        ev = HardEvents(p[ok][:, 2:].contiguous(), x1[ok], x2[ok], ms_map.sqrt_s)
        w[ok] = integrand.differential(ev) * det[ok] * jac[ok]
    return w


def _ours_cube(integrand: HadronicIntegrand):
    def f(r: torch.Tensor) -> torch.Tensor:
        return integrand(r.to(torch.float64))

    return f


def _train(method: str, integrand, problem: str, budget: int, seed: int, ctx, info: dict):
    """Train ``method``; returns (draw(n, gen) -> weights, train calls, train seconds).

    ``draw`` may record diagnostics in ``info`` (added to the method's row)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    if method == "madspace-integrand":
        mi = MadspaceIntegrand(problem, integrand.process, ctx, name=f"integrand{seed}")
        calls = mi.train(VEGAS_ROUNDS, budget // VEGAS_ROUNDS)
        torch.manual_seed(seed)

        def draw(n, gen):
            w = mi(n)["weight"]
            # madspace keeps negative x·f of the LO set (s, s̄ at large x); ours sets them
            # to zero, as Pythia 8: with |M|² >= 0 and one negative density per such event
            # (x1 x2 = ŝ/s forbids two), that is exactly a clamp of the weight at zero
            info["negative_weight_fraction"] = float(-w[w < 0].sum() / w.abs().sum())
            return w.clamp(min=0)

        return draw, calls, time.perf_counter() - t0
    if method.startswith("madspace"):
        ms_map = MadspaceMap(madspace_map(problem, integrand.process),
                             integrand.process.sqrt_s, ctx)
        vegas = None
        calls = 0
        if method == "madspace-vegas":
            vegas = MadspaceVegas(ms_map.dim, VEGAS_BINS, ctx, f"bench{seed}_{problem}")
            per = budget // VEGAS_ROUNDS
            for _ in range(VEGAS_ROUNDS):
                u = torch.rand(per, ms_map.dim, generator=g, dtype=torch.float64)
                vegas.add_data(u, _weights_on_map(integrand, ms_map, u, vegas))
                vegas.optimize()
            calls = per * VEGAS_ROUNDS

        def draw(n, gen):
            u = torch.rand(n, ms_map.dim, generator=gen, dtype=torch.float64)
            return _weights_on_map(integrand, ms_map, u, vegas)

        return draw, calls, time.perf_counter() - t0
    if method == "ours-multichannel":
        target, maps = hadronic_channels(integrand)
        mc = fit_multichannel(target, maps, MultiChannelConfig(calls=budget), generator=g)

        def draw(n, gen):
            return mc.sample(n, generator=gen).weights

        return draw, mc.n_eval, mc.seconds
    f = _ours_cube(integrand)
    if method == "ours-vegas":
        vm = VegasMap(integrand.dim, bins=VEGAS_BINS)
        per = budget // VEGAS_ROUNDS
        vm.adapt(f, VEGAS_ROUNDS, per, generator=g)
        proposal, calls = vm, per * VEGAS_ROUNDS
        seconds = time.perf_counter() - t0
    elif method == "ours-flow":
        nf = fit(f, integrand.dim, NISConfig(calls=budget), generator=g)
        proposal, calls, seconds = nf.proposal, nf.n_eval, nf.seconds
    else:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")

    def draw(n, gen):
        with torch.no_grad():
            x, log_q = proposal.sample(n, generator=gen)
            return f(x) * torch.exp(-log_q)

    return draw, calls, seconds


def run_one(problem: str, method: str, seed: int, budget: int, n_eval: int) -> dict:
    """Train one method with ``budget`` calls and generate from ``n_eval`` fresh points.

    Returns:
        A row: train calls and seconds, σ ± error (pb), unweighting efficiency, the
        number of unweighted events and their rate (per second of generation wall time,
        and including training).
    """
    row = {"problem": problem, "method": method, "seed": seed}
    try:
        ctx = _context() if method.startswith("madspace") else None
    except ImportError as e:
        row["status"] = f"not installed ({e.name})"
        return row
    integrand = HadronicIntegrand(_process(problem), channel=0)
    info: dict = {}
    draw, calls, train_s = _train(method, integrand, problem, budget, seed, ctx, info)
    gen = torch.Generator().manual_seed(seed + 7919)
    t0 = time.perf_counter()
    w = draw(n_eval, gen)
    u = unweight(w, OVERWEIGHT, generator=gen)
    gen_s = time.perf_counter() - t0
    n_unw = int(u.indices.numel())
    row.update(
        status="ok", train_calls=int(calls), train_s=train_s, gen_s=gen_s, n_eval=n_eval,
        value=float(w.mean()), error=float(w.std()) / math.sqrt(w.numel()),
        rel_std=float(w.std() / w.abs().mean()), unweighting_efficiency=u.efficiency,
        n_unweighted=n_unw, unweighted_per_s=n_unw / gen_s,
        unweighted_per_s_with_training=n_unw / (gen_s + train_s), **info,
    )
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Medians over seeds per (problem, method), pulls and ratios against :data:`BASELINES`."""
    out = []
    for p in dict.fromkeys(r["problem"] for r in rows):
        by = {}
        for m in METHODS:
            rs = [r for r in rows if r["problem"] == p and r["method"] == m]
            if not rs:
                continue
            ok = [r for r in rs if r.get("status") == "ok"]
            if not ok:
                by[m] = {"problem": p, "method": m, "status": rs[0].get("status")}
                continue
            s = {"problem": p, "method": m, "status": "ok", "seeds": len(ok)}
            for k in ("train_calls", "train_s", "gen_s", "value", "error", "rel_std",
                      "unweighting_efficiency", "unweighted_per_s",
                      "unweighted_per_s_with_training"):
                s[k] = statistics.median(r[k] for r in ok)
            # pull of every seed against the first baseline's run with the same seed
            by[m] = s
            s["_rows"] = ok
        for m, s in by.items():
            if s.get("status") != "ok":
                continue
            for b in BASELINES:
                bs = by.get(b)
                if bs is None or bs.get("status") != "ok":
                    continue
                s[f"efficiency_ratio_vs_{b}"] = s["unweighting_efficiency"] / bs[
                    "unweighting_efficiency"]
                s[f"rate_ratio_vs_{b}"] = s["unweighted_per_s"] / bs["unweighted_per_s"]
                pulls = []
                for r in s["_rows"]:
                    ref = [q for q in bs["_rows"] if q["seed"] == r["seed"]]
                    if ref:
                        q = ref[0]
                        pulls.append((r["value"] - q["value"]) / math.hypot(r["error"],
                                                                            q["error"]))
                if pulls and m != b:
                    s[f"pull_vs_{b}"] = statistics.median(pulls)
        for s in by.values():
            s.pop("_rows", None)
            out.append(s)
    return out


def markdown(summary: list[dict]) -> str:
    """The summary as a markdown table."""
    b = BASELINES[0]
    lines = [
        f"| problem | method | calls | train s | σ [pb] | pull vs {b} | eff. | "
        f"eff. / {b} | unw/s (gen) | rate / {b} | unw/s (incl. train) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        if s.get("status") != "ok":
            lines.append(f"| {s['problem']} | {s['method']} | {s.get('status')} |" + " |" * 8)
            continue
        pull = s.get(f"pull_vs_{b}")
        lines.append(
            f"| {s['problem']} | {s['method']} | {s['train_calls']:.0f} | {s['train_s']:.1f} | "
            f"{s['value']:.5g} ± {s['error']:.2g} | "
            f"{'—' if pull is None else f'{pull:+.2f}'} | {s['unweighting_efficiency']:.4f} | "
            f"{s.get(f'efficiency_ratio_vs_{b}', math.nan):.2f} | "
            f"{s['unweighted_per_s']:.3g} | {s.get(f'rate_ratio_vs_{b}', math.nan):.2f} | "
            f"{s['unweighted_per_s_with_training']:.3g} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--methods", default=None,
                    help=f"comma list of {METHODS} (default all but ours-flow with --quick)")
    ap.add_argument("--budget", type=int, default=200_000, help="training calls per method")
    ap.add_argument("--n-eval", type=int, default=200_000, help="fresh points per method")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="20k calls, 50k points, one seed, no flow")
    ap.add_argument("--out", default=None, help="JSON file (default benchmarks/results/"
                    "madspace[_quick].json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.budget, args.n_eval, args.seeds = 20_000, 50_000, 1
    methods = (args.methods.split(",") if args.methods else
               [m for m in METHODS if not (args.quick and m == "ours-flow")])
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"--methods: expected names from {METHODS}, got {m!r}")
    problems = args.problems.split(",")
    for p in problems:
        if p not in PROBLEMS:
            raise ValueError(f"--problems: expected names from {PROBLEMS}, got {p!r}")
    torch.set_num_threads(1)
    try:
        import madspace
        version = getattr(madspace, "__version__", None)
        if version is None:
            from importlib.metadata import version as _v
            version = _v("madspace")
    except ImportError:
        version = None
    rows = []
    for p in problems:
        for seed in range(args.seeds):
            for m in methods:
                row = run_one(p, m, seed, args.budget, args.n_eval)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = summarise(rows)
    print(markdown(summary))
    out = args.out or os.path.join(os.path.dirname(__file__), "results",
                                   "madspace_quick.json" if args.quick else "madspace.json")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as fh:
        json.dump({"madspace_version": version, "torch_threads": 1, "budget": args.budget,
                   "n_eval": args.n_eval, "seeds": args.seeds, "overweight": OVERWEIGHT,
                   "baselines": list(BASELINES), "rows": rows, "summary": summary}, fh,
                  indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
