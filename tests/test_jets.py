"""The ``jets`` process (g g -> n g through forward.amplitudes): |M|² against the
textbook g g -> g g form, cuts, symmetry, registry and CLI, and σ against Pythia 8.317.

The Pythia comparison is in units of the combined standard error; |pull| < 4 fails
with probability 6e-5 when both numbers are right (Gaussian errors).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from _helpers import five_gluon_parke_taylor, seeded
from click.testing import CliRunner

from forward.events import HardEvents
from forward.processes import get_process, process_settings
from forward.processes.jets import Jets, outgoing_momenta
from forward.processes.ttbar import running_alpha_s
from forward.xsec import cross_section
from invsim.cli import cli

F64 = torch.float64

#: Pythia 8.317 at 13 TeV with ``HardQCD:gg2gg = on``, ``PhaseSpace:pTHatMin = 100``,
#: ``PDF:pSet = 18``, ``SigmaProcess:alphaSvalue = 0.118`` (alphaSorder = 1; μ_R = μ_F =
#: p_T by default), ``PartonLevel:all = off``, ``HadronLevel:all = off``,
#: ``Random:seed = 2026``, 2·10⁶ events: σ and its error in pb (docs/design.md §4).
#: Not in forward.references.PYTHIA_REFERENCES, which ``invsim demo`` runs in full.
PYTHIA_GG2GG_PT100 = (530079.99, 187.08)
#: the invsim set-up of that run
GG2GG_PT100_SETTINGS = {"n_jets": 2, "pt_min": 100.0, "eta_max": None, "delta_r_min": 0.0}



def _events(proc: Jets, npts: int, seed: int) -> HardEvents:
    gen = seeded(seed)
    r = torch.rand(npts, proc.phase_space()[0].dim, generator=gen, dtype=F64)
    events, _ = proc.phase_space()[0].forward(r)
    return events


def test_two_jets_against_textbook_gg_to_gg():
    proc = Jets(n_jets=2, pt_min=30.0, eta_max=None, delta_r_min=0.0)
    events = _events(proc, 4000, 1)
    keep = proc.cuts(events)
    assert 100 < int(keep.sum()) < 4000  # both branches exercised
    params = proc.params({"alpha_s": 0.125})
    me = proc.matrix_element(events, params)[:, 0]
    k = outgoing_momenta(events)

    def inv(a, b):
        return 2.0 * (k[:, a, 0] * k[:, b, 0] - (k[:, a, 1:] * k[:, b, 1:]).sum(-1))

    s, t, u = inv(0, 1), inv(0, 2), inv(0, 3)
    mu2 = proc.scales(events, params)[1]
    als = running_alpha_s(torch.tensor(0.125, dtype=F64), mu2, 1)
    # averaged |M|² = g⁴ (9/2)(3 - tu/s² - su/t² - st/u²), times 1/2! for the identical gluons
    ref = 0.5 * (4 * math.pi * als) ** 2 * 4.5 * (3 - t * u / s**2 - s * u / t**2
                                                  - s * t / u**2)
    assert ((me[keep] - ref[keep]).abs() / ref[keep]).max() < 1e-10
    assert torch.equal(me[~keep], torch.zeros_like(me[~keep]))
    # μ = p_T of either gluon for 2 -> 2
    pts = torch.hypot(events.momenta[..., 1], events.momenta[..., 2])
    assert torch.allclose(mu2, pts[:, 0] ** 2, rtol=1e-12)


def test_three_jets_symmetric_and_finite():
    proc = Jets(n_jets=3, pt_min=20.0)
    events = _events(proc, 600, 2)
    params = proc.params()
    me = proc.matrix_element(events, params)[:, 0]
    keep = proc.cuts(events)
    assert int(keep.sum()) > 20
    assert bool(torch.isfinite(me).all()) and bool((me[keep] > 0).all())
    # normalisation: the Parke–Taylor five-gluon sum, averaged over 256 initial states,
    # with 1/3! for the identical gluons and g_s⁶ at μ_R
    mu2 = proc.scales(events, params)[1]
    g2 = 4 * math.pi * running_alpha_s(torch.tensor(0.118, dtype=F64), mu2, 1)
    ref = five_gluon_parke_taylor(outgoing_momenta(events)) * g2**3 / (256 * 6)
    assert ((me[keep] - ref[keep]).abs() / ref[keep]).max() < 1e-10
    perm = HardEvents(momenta=events.momenta[:, [2, 0, 1]], x1=events.x1, x2=events.x2,
                      sqrt_s=events.sqrt_s)
    assert torch.allclose(proc.matrix_element(perm, params)[:, 0], me, rtol=1e-10, atol=0)
    # α_s enters as α_s³ at fixed scale
    fixed = Jets(n_jets=3, pt_min=20.0, scale="fixed", mu_fixed=91.188)
    a = fixed.matrix_element(events, fixed.params({"alpha_s": 0.11}))[:, 0]
    b = fixed.matrix_element(events, fixed.params({"alpha_s": 0.13}))[:, 0]
    assert torch.allclose(b[keep], a[keep] * (0.13 / 0.11) ** 3, rtol=1e-10)


def test_alpha_s_gradient():
    proc = Jets(n_jets=2, pt_min=30.0)
    events = _events(proc, 200, 3)
    a = torch.tensor(0.12, dtype=F64, requires_grad=True)
    me = proc.matrix_element(events, proc.params({"alpha_s": a}))
    me.sum().backward()
    assert a.grad is not None and float(a.grad) > 0


def test_bad_input_and_registry():
    with pytest.raises(ValueError, match="n_jets"):
        Jets(n_jets=6)
    with pytest.raises(ValueError, match="n_jets"):
        Jets(n_jets=1)
    with pytest.raises(ValueError, match="pt_min"):
        Jets(pt_min=-1.0)
    with pytest.raises(ValueError, match="scale"):
        Jets(scale="mt")
    proc = get_process("jets", n_jets=3, pt_min=40.0)
    assert isinstance(proc, Jets) and proc.final_state == (21, 21, 21)
    assert process_settings(proc, strict=True)["pt_min"] == 40.0
    events = _events(proc, 10, 4)
    bad = events.momenta.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        proc.matrix_element(HardEvents(momenta=bad, x1=events.x1, x2=events.x2,
                                       sqrt_s=events.sqrt_s), proc.params())
    with pytest.raises(ValueError, match="shape"):
        proc.matrix_element(HardEvents(momenta=events.momenta[:, :2], x1=events.x1,
                                       x2=events.x2, sqrt_s=events.sqrt_s), proc.params())


def test_cli_xsec_jets():
    res = CliRunner().invoke(cli, ["xsec", "jets", "--set", "n_jets=2", "--set", "pt_min=100",
                                   "--events", "5000", "--seed", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["process"] == "jets" and out["settings"]["n_jets"] == 2
    assert out["sigma_pb"] > 0 and out["error_pb"] < out["sigma_pb"]


@pytest.mark.slow
def test_gg_to_gg_cross_section_against_pythia():
    """Pythia 8.317 HardQCD:gg2gg with pTHatMin = 100 GeV (docs/design.md §4)."""
    ref, ref_err = PYTHIA_GG2GG_PT100
    proc = get_process("jets", **GG2GG_PT100_SETTINGS)
    res = cross_section(proc, 800_000, seed=2026, method="vegas")
    pull = (res.value - ref) / math.hypot(res.error, ref_err)
    assert abs(pull) < 4.0, (res, ref, ref_err, pull)


def test_cli_generate_jets(tmp_path):
    out = tmp_path / "jets.h5"
    res = CliRunner().invoke(cli, ["generate", "jets", "--events", "50", "--set", "n_jets=2",
                                   "--set", "pt_min=50", "--train-calls", "5000", "--seed", "2",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 0 and "jets: 50 events" in res.output
