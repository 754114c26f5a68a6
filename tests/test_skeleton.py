"""Package skeleton: imports, CLI basics, input validation helpers, the Process contract."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

import forward
import invsim
from forward._validation import as_tensor, check_finite, check_floating, check_range
from forward.events import HardEvents, incoming_momenta
from forward.processes import Parameter, get_process
from invsim.cli import cli


def test_versions_agree():
    assert forward.__version__ == invsim.__version__
    assert forward.__version__.count(".") == 2


def test_cli_version_and_cite():
    runner = CliRunner()
    res = runner.invoke(cli, ["--version"])
    assert res.exit_code == 0 and invsim.__version__ in res.output
    res = runner.invoke(cli, ["--cite"])
    assert res.exit_code == 0 and "@software{invsim" in res.output


def test_check_range_messages():
    check_range("x", torch.tensor([0.1, 0.5]), 0.0, 1.0, low_open=True)
    with pytest.raises(ValueError, match=r"x: expected values in \(0.0, 1.0\]"):
        check_range("x", torch.tensor([0.0, 0.5]), 0.0, 1.0, low_open=True)
    with pytest.raises(ValueError, match="q2"):
        check_range("q2", torch.tensor([math.nan]), 0.0)


def test_check_finite_and_floating():
    with pytest.raises(ValueError, match="w: 1 NaN and 1 infinite"):
        check_finite("w", torch.tensor([1.0, math.nan, math.inf]))
    with pytest.raises(TypeError, match="floating-point"):
        check_floating("p", torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="x: expected a tensor"):
        as_tensor("x", "0.5")


def test_incoming_momenta_conserve_energy():
    x1 = torch.tensor([0.1, 0.5], dtype=torch.float64)
    x2 = torch.tensor([0.2, 0.5], dtype=torch.float64)
    p = incoming_momenta(x1, x2, 13000.0)
    assert p.shape == (2, 2, 4)
    total = p.sum(dim=1)
    s_hat = total[:, 0] ** 2 - (total[:, 1:] ** 2).sum(-1)
    torch.testing.assert_close(s_hat, x1 * x2 * 13000.0**2)


def test_hard_events_validate_shapes():
    m = torch.zeros(3, 2, 4, dtype=torch.float64)
    ev = HardEvents(m, torch.full((3,), 0.1), torch.full((3,), 0.2), 13000.0)
    assert len(ev) == 3 and len(ev[:2]) == 2
    with pytest.raises(ValueError, match="x1: expected shape"):
        HardEvents(m, torch.zeros(2), torch.zeros(3), 13000.0)
    with pytest.raises(ValueError, match=r"momenta: expected shape \(n, k, 4\)"):
        HardEvents(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), 13000.0)


def test_parameter_rejects_default_outside_range():
    with pytest.raises(ValueError, match="outside"):
        Parameter("m", 5.0, 0.0, 1.0)


def test_unknown_process_lists_builtins():
    with pytest.raises(ValueError, match="drell-yan"):
        get_process("no-such-process")
