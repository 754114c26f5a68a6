"""``invsim generate`` on multi-channel NIS: events, cross section, options, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

from forward import kinematics as kin
from forward.generate import generate_hard_events
from forward.integrand import HadronicIntegrand
from forward.io import load_hdf5
from forward.processes import get_process
from invsim.cli import cli


@pytest.fixture(scope="module")
def dy_integrand():
    return HadronicIntegrand(get_process("drell-yan", mll_min=60.0, mll_max=120.0))


def test_generate_hard_events_matches_pythia_and_the_window(dy_integrand):
    gen = torch.Generator().manual_seed(2)
    res = generate_hard_events(dy_integrand, 3000, generator=gen, train_calls=40_000)
    assert len(res.events) == 3000 and res.incoming_pids.shape == (3000, 2)
    assert bool((res.event_weights >= 1).all()) and res.n_train == 40_000
    assert 0.2 < res.efficiency <= 1 and res.overweight_fraction <= 1e-3 + 1e-12
    # σ against Pythia 8.317 (docs/design.md §4: 3060.19 ± 1.81 pb, ee + μμ); 5σ of the
    # combined error: false-failure rate < 6e-7
    assert abs(res.cross_section - 3060.19) < 5 * math.hypot(res.error, 1.81), res
    mll = kin.mass(res.events.momenta.sum(1))
    assert bool(((mll >= 60) & (mll <= 120)).all())
    # incoming partons are a quark and its antiquark
    assert bool((res.incoming_pids[:, 0] == -res.incoming_pids[:, 1]).all())
    # share of events within 91.19 ± 2.5 GeV against σ(window)/σ(60-120) from plain VEGAS
    # cross sections; |z| < 5 of the binomial error (the VEGAS ratio's error, < 0.1 %,
    # is negligible): false-failure rate < 1e-6
    from forward.xsec import cross_section

    peak = cross_section(get_process("drell-yan", mll_min=88.69, mll_max=93.69), 100_000,
                         method="vegas", seed=1)
    full = cross_section(get_process("drell-yan", mll_min=60.0, mll_max=120.0), 100_000,
                         method="vegas", seed=2)
    ref = peak.value / full.value
    frac = float(((mll - 91.19).abs() < 2.5).double().mean())
    assert abs(frac - ref) < 5 * math.sqrt(ref * (1 - ref) / 3000), (frac, ref)


def test_generate_hard_events_rejects_bad_counts(dy_integrand):
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="n_events: expected an integer >= 1, got 0"):
        generate_hard_events(dy_integrand, 0, generator=gen)
    with pytest.raises(ValueError, match="train_calls: expected an integer >= 1000, got 10"):
        generate_hard_events(dy_integrand, 10, generator=gen, train_calls=10)


def test_cli_generate_options(tmp_path):
    out = tmp_path / "dy.h5"
    args = ["generate", "drell-yan", "--events", "200", "--set", "mll_min=60", "--set",
            "mll_max=120", "--train-calls", "20000", "--overweight", "0.01", "--seed", "3",
            "-o", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    es = load_hdf5(out)
    assert len(es) == 200 and es.metadata["train_calls"] == 20_000
    assert es.metadata["overweight"] == 0.01 and "multi-channel" in es.metadata["generator"]
    assert math.isclose(float(es.weights.sum()), es.cross_section, rel_tol=1e-12)
    bad = CliRunner().invoke(cli, [*args[:9], "--train-calls", "10", "-o", str(out),
                                   "--overwrite"])
    assert bad.exit_code != 0 and "--train-calls" in bad.output
    bad = CliRunner().invoke(cli, [*args[:9], "--overweight", "1.5", "-o", str(out),
                                   "--overwrite"])
    assert bad.exit_code != 0 and "--overweight" in bad.output
