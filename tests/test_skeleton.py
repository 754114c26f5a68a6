"""Package skeleton: imports, CLI basics, input validation helpers, the Process contract."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import forward
import invsim
from forward._validation import as_tensor, check_finite, check_floating, check_range
from forward.events import HardEvents, incoming_momenta
from forward.processes import Parameter, get_process, register_process, unregister_process
from forward.processes.drell_yan import DrellYan
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


def test_python_m_invsim_runs_the_cli():
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-m", "invsim", "--version"], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and invsim.__version__ in res.stdout, res.stderr


class _FailingProcess(DrellYan):
    """Drell–Yan whose matrix element raises ``error`` (what a command may leak)."""

    error: Exception = RuntimeError("CUDA out of memory.\n  Tried to allocate 2 GiB")

    def matrix_element(self, events, params):
        raise self.error


@pytest.fixture
def failing_process():
    register_process("failing-test-process", _FailingProcess)
    yield _FailingProcess
    unregister_process("failing-test-process")


@pytest.mark.parametrize(("error", "line"), [
    (RuntimeError("CUDA out of memory.\n  Tried to allocate 2 GiB"),
     "Error: CUDA out of memory. Tried to allocate 2 GiB"),
    (OSError("Unable to open file (file signature not found)"),
     "Error: Unable to open file (file signature not found)"),
    (KeyError("dataset 'reco/momenta' not found"), "Error: dataset 'reco/momenta' not found"),
    (ImportError(""), "Error: ImportError"),  # no message: the type names it
])
def test_cli_errors_are_one_line_without_traceback(failing_process, monkeypatch, error, line):
    monkeypatch.setattr(failing_process, "error", error)
    args = ["xsec", "failing-test-process", "--events", "100", "--method", "plain"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr == line + "\n"
    # --debug: the exception itself escapes (click's runner catches it; a shell shows
    # the traceback)
    res = CliRunner().invoke(cli, ["--debug", *args])
    assert res.exit_code == 1 and res.exception is error


def test_usage_errors_keep_exit_status_2():
    res = CliRunner().invoke(cli, ["xsec", "drell-yan", "--events", "1"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["xsec"])
    assert res.exit_code == 2 and "Missing argument 'PROCESS'" in res.output


@pytest.mark.parametrize(("old", "name", "new"), [
    ("invsim.cli_xsec", "xsec", "invsim.cli.xsec"),
    ("invsim.cli_xsec", "parse_assignments", "invsim.cli"),
    ("invsim.cli_generate", "generate", "invsim.cli.generate"),
    ("invsim.cli_generate", "generate_hard_events", "forward.generate"),
    ("invsim.cli_generate", "GeneratedEvents", "forward.generate"),
    ("invsim.cli_scan", "scan_command", "invsim.cli.scan"),
    ("invsim.cli_scan", "load_factory", "invsim.cli"),
    ("invsim.cli_scan", "parse_grid", "invsim.cli"),
    ("invsim.cli_scan", "parse_range", "invsim.cli"),
    ("invsim.cli_posterior", "posterior", "invsim.cli.posterior"),
    ("invsim.cli_posterior", "load_factory", "invsim.cli"),
    ("invsim.cli_demo", "demo", "invsim.cli.demo"),
    ("invsim.cli_demo", "run_demo", "invsim.demo"),
])
def test_old_cli_modules_forward_with_a_future_warning(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(FutureWarning, match=f"{old}.{name} moved to {new}.{name}"):
        obj = getattr(module, name)
    assert obj is getattr(importlib.import_module(new), name)
    assert name in module.__all__
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        module.nothing  # noqa: B018


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
