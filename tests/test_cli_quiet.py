"""Command-line output: no progress-bar noise in logs, ``--quiet`` prints only the result,
``--verbose`` forces bars (unless ``TQDM_DISABLE``), ``python -m invsim`` runs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from _helpers import save_toy_events
from click.testing import CliRunner

from forward.progress import progress_bar, progress_enabled, progress_mode
from invsim.cli import cli

FACTORY = "invsim.infer.toys:gaussian_mean_factory"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def toy_events(tmp_path):
    path = tmp_path / "toy.h5"
    save_toy_events(path, seed=4)
    return path


def test_generate_log_has_no_progress_noise(tmp_path):
    # `python -m invsim generate ... 2> log`: stderr is a file, not a terminal
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    log = tmp_path / "log"
    with open(log, "wb") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "invsim", "generate", "drell-yan", "--events", "40", "--set",
             "mll_min=60", "--set", "mll_max=120", "--train-calls", "2000", "--seed", "1",
             "-o", str(tmp_path / "ev.h5")],
            stdout=subprocess.PIPE, stderr=err, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, log.read_text()
    text = log.read_bytes()
    assert b"\r" not in text and b"it/s" not in text and b"unweighting" not in text, text
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drell-yan: 40 events"), lines


def test_progress_enabled_rules(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    tty, pipe = _Tty(), io.StringIO()
    assert progress_enabled(True, tty) and not progress_enabled(True, pipe)
    assert not progress_enabled(False, tty)
    with progress_mode(True):  # --verbose: bars also into a log
        assert progress_enabled(True, pipe) and not progress_enabled(False, pipe)
    with progress_mode(False):  # --quiet
        assert not progress_enabled(True, tty)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not progress_enabled(True, tty)
    with progress_mode(True):
        assert not progress_enabled(True, tty)
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert progress_enabled(True, tty)
    # the bar itself: drawn into a terminal, silent into a pipe
    for stream, drawn in ((tty, True), (pipe, False)):
        for _ in progress_bar(range(3), file=stream, desc="count"):
            pass
        assert ("count" in stream.getvalue()) is drawn
    with pytest.raises(TypeError, match="disable"):
        progress_bar(range(3), disable=True)


def test_every_command_has_quiet_verbose_and_json():
    for name, command in cli.commands.items():
        params = {p.name for p in command.params}
        assert {"quiet", "verbose", "as_json"} <= params, (name, params)


def test_xsec_quiet_prints_only_the_result():
    args = ["xsec", "drell-yan", "--set", "mll_min=60", "--set", "mll_max=120", "--events",
            "4000", "--seed", "2"]
    full = CliRunner().invoke(cli, args)
    quiet = CliRunner().invoke(cli, [*args, "--quiet"])
    assert full.exit_code == 0 and quiet.exit_code == 0, (full.output, quiet.output)
    assert len(full.stdout.splitlines()) > 1
    assert quiet.stdout.splitlines() == full.stdout.splitlines()[:1]
    assert quiet.stderr == ""
    both = CliRunner().invoke(cli, [*args, "--quiet", "--verbose"])
    assert both.exit_code == 2 and "--quiet, --verbose" in both.output


def test_scan_and_posterior_quiet_print_only_results(toy_events, tmp_path):
    scan = ["scan", "--data", str(toy_events), "--likelihood", FACTORY, "--param",
            "mu=40:60:5"]
    full = CliRunner().invoke(cli, [*scan, "-o", str(tmp_path / "a")])
    quiet = CliRunner().invoke(cli, [*scan, "-o", str(tmp_path / "b"), "-q"])
    assert full.exit_code == 0 and quiet.exit_code == 0, (full.output, quiet.output)
    lines = full.stdout.splitlines()
    assert any(x.startswith("Written to") for x in lines)
    assert quiet.stdout.splitlines() == [x for x in lines if not x.startswith("Written to")]
    assert "best fit" in quiet.stdout and quiet.stderr == ""

    post = ["posterior", "--data", str(toy_events), "--likelihood", FACTORY, "--chains", "1",
            "--samples", "20", "--warmup", "20", "--seed", "1"]
    full = CliRunner().invoke(cli, [*post, "-o", str(tmp_path / "a.nc")])
    quiet = CliRunner().invoke(cli, [*post, "-o", str(tmp_path / "b.nc"), "--quiet"])
    assert full.exit_code == 0 and quiet.exit_code == 0, (full.output, quiet.output)
    lines = full.stdout.splitlines()
    assert lines[0].startswith("drell-yan: 30 events, nuts")  # informational
    assert quiet.stdout.splitlines() == lines[1:] and "mu" in quiet.stdout


def test_posterior_verbose_shows_nuts_progress(toy_events, tmp_path, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv("CI", raising=False)  # Pyro hides its NUTS bar when CI is set
    args = ["posterior", "--data", str(toy_events), "--likelihood", FACTORY, "--chains", "1",
            "--samples", "20", "--warmup", "20", "--seed", "1", "--json"]
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "v.nc"), "--verbose"])
    assert res.exit_code == 0, res.output
    assert "Sample" in res.stderr and "provenance:" in res.stderr
    json.loads(res.stdout)  # the result alone on stdout
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "q.nc")])
    assert res.exit_code == 0 and "Sample" not in res.stderr  # not a terminal
