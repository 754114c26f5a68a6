"""The process registry: user processes by name in get_process, the CLI and saved names."""

from __future__ import annotations

import importlib.metadata
import json
import math
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner

from forward import processes as reg
from forward.processes import (
    BUILTIN_PROCESSES,
    Parameter,
    Process,
    available_processes,
    get_process,
    process_class,
    process_name,
    register_process,
    unregister_process,
)
from forward.processes.drell_yan import DrellYan
from forward.xsec import cross_section
from invsim.cli import cli


class FlatPairs(Process):
    """u ū → ℓℓ with |M|² = c (a constant) in DrellYan's lepton-pair mass window."""

    def __init__(self, mll_min: float = 60.0, mll_max: float = 120.0):
        self._dy = DrellYan(mll_min=mll_min, mll_max=mll_max, mode="gamma_z")
        self.mll_min, self.mll_max = mll_min, mll_max
        self.sqrt_s = self._dy.sqrt_s
        self.pdf = self._dy.pdf
        self.parameters = {"c": Parameter("c", 1.0, 0.0, 10.0, "", "|M|² constant")}
        self.final_state = (11, -11)
        self.flavour_channels = ((2, -2),)

    def matrix_element(self, events, params):
        return params["c"] * torch.ones(len(events), 1, dtype=events.momenta.dtype,
                                        device=events.momenta.device)

    def phase_space(self, params=None):
        return self._dy.phase_space()

    def scales(self, events, params):
        return self._dy.scales(events)


class DoubledDrellYan(DrellYan):
    """Drell–Yan with twice the matrix element: σ must come out exactly twice as large."""

    name = "doubled-drell-yan"

    def matrix_element(self, events, params):
        return 2 * super().matrix_element(events, params)


@pytest.fixture
def registered():
    """Register processes for one test; unregister them afterwards (no leaks)."""
    names = []

    def add(name, cls):
        register_process(name, cls)
        names.append(name)
        return cls

    yield add
    for name in names:
        unregister_process(name)


def test_register_get_and_name_a_direct_subclass(registered):
    assert "flat-pairs" not in available_processes()
    registered("flat-pairs", FlatPairs)
    assert "flat-pairs" in available_processes() and process_class("flat-pairs") is FlatPairs
    proc = get_process("flat-pairs", mll_min=70.0, mll_max=110.0)
    assert isinstance(proc, FlatPairs) and proc.mll_min == 70.0
    assert FlatPairs.name == "flat-pairs" and process_name(proc) == "flat-pairs"
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['mll'\]"):
        get_process("flat-pairs", mll=3)
    # σ is linear in c: at the same seed c = 3 gives exactly 3 times c = 1
    one = cross_section(proc, 5000, params={"c": 1.0}, seed=2)
    three = cross_section(proc, 5000, params={"c": 3.0}, seed=2)
    assert one.value > 0 and three.value == pytest.approx(3 * one.value, rel=1e-12)


def test_unregister_restores_the_class_and_the_names():
    register_process("flat-pairs", FlatPairs)
    register_process("flat-pairs", FlatPairs)  # the same class again: a no-op
    unregister_process("flat-pairs")
    assert "name" not in FlatPairs.__dict__ and FlatPairs.name == ""
    assert "flat-pairs" not in available_processes()
    with pytest.raises(ValueError, match="flat-pairs"):
        get_process("flat-pairs")
    with pytest.raises(ValueError, match="no process registered as 'flat-pairs'"):
        unregister_process("flat-pairs")
    with pytest.raises(ValueError, match="built-in"):
        unregister_process("drell-yan")


def test_decorator_and_clashes(registered):
    @register_process("decorated-pairs")
    class Decorated(FlatPairs):
        pass

    try:
        assert process_class("decorated-pairs") is Decorated and Decorated.name == (
            "decorated-pairs")
        # another class under a taken name, built-in or registered
        with pytest.raises(ValueError, match="already registered as .*DrellYan"):
            register_process("drell-yan", DoubledDrellYan)
        with pytest.raises(ValueError, match="already registered as .*Decorated"):
            register_process("decorated-pairs", FlatPairs)
        # a class declaring another name, and the built-in under its own name (no-op)
        with pytest.raises(ValueError, match="declares name = 'doubled-drell-yan'"):
            register_process("something-else", DoubledDrellYan)
        assert register_process("drell-yan", DrellYan) is DrellYan
    finally:
        unregister_process("decorated-pairs")


def test_bad_registrations_and_unregistered_instances():
    with pytest.raises(TypeError, match="subclass of forward.processes.Process"):
        register_process("x", dict)
    with pytest.raises(TypeError, match="abstract"):
        register_process("x", Process)
    with pytest.raises(TypeError, match="name: expected a str"):
        register_process(3, FlatPairs)
    with pytest.raises(ValueError, match="non-empty"):
        register_process(" ", FlatPairs)
    with pytest.raises(TypeError, match="FlatPairs is not a registered process"):
        process_name(FlatPairs())
    # a subclass of a built-in is not the built-in: saving it by name would load DrellYan
    with pytest.raises(TypeError, match="DoubledDrellYan is not a registered process"):
        process_name(DoubledDrellYan())
    with pytest.raises(TypeError, match="expected a forward.processes.Process"):
        process_name("drell-yan")
    assert process_name(get_process("ttbar")) == "ttbar"
    assert set(BUILTIN_PROCESSES) <= set(available_processes())


def test_entry_point_is_loaded_on_first_unknown_name(tmp_path, monkeypatch):
    (tmp_path / "invsim_test_plugin.py").write_text(textwrap.dedent("""
        from forward.processes.drell_yan import DrellYan

        class PluginDY(DrellYan):
            name = "plugin-dy"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [importlib.metadata.EntryPoint("plugin-dy", "invsim_test_plugin:PluginDY",
                                         "invsim.processes"),
           importlib.metadata.EntryPoint("broken", "invsim_no_such_module_xyz:P",
                                         "invsim.processes")]
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [e for e in eps if e.group == group])
    monkeypatch.setattr(reg.registry, "_entry_points", None)
    monkeypatch.delitem(sys.modules, "invsim_test_plugin", raising=False)
    try:
        assert {"plugin-dy", "broken"} <= set(available_processes())
        proc = get_process("plugin-dy", mll_min=80.0)
        assert type(proc).__name__ == "PluginDY" and process_name(proc) == "plugin-dy"
        with pytest.raises(ValueError, match="cannot import its entry point"):
            get_process("broken")
    finally:
        unregister_process("plugin-dy")


def _xsec(*args):
    return CliRunner().invoke(cli, ["xsec", *args])


def test_cli_xsec_runs_a_registered_drell_yan_subclass(registered):
    registered("doubled-drell-yan", DoubledDrellYan)
    args = ["--set", "mll_min=60", "--set", "mll_max=120", "--set", "leptons=ee",
            "--events", "20000", "--method", "plain", "--seed", "4", "--json"]
    res = _xsec("doubled-drell-yan", *args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["process"] == "doubled-drell-yan" and out["settings"]["leptons"] == "ee"
    # the same points with the built-in: |M|² doubled -> σ and its error doubled exactly
    ref = cross_section(DrellYan(mll_min=60.0, mll_max=120.0, leptons="ee"), 20000,
                        method="plain", seed=4)
    assert out["sigma_pb"] == pytest.approx(2 * ref.value, rel=1e-12)
    assert out["error_pb"] == pytest.approx(2 * ref.error, rel=1e-9)
    listed = _xsec("--list", "--json")
    assert listed.exit_code == 0 and "doubled-drell-yan" in json.loads(listed.output)


def test_cli_xsec_runs_a_direct_subclass_with_its_parameter(registered):
    registered("flat-pairs", FlatPairs)
    res = _xsec("flat-pairs", "--set", "c=2.5", "--set", "mll_min=70", "--events", "4000",
                "--method", "plain", "--seed", "1", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    ref = cross_section(FlatPairs(mll_min=70.0), 4000, method="plain", seed=1)
    assert out["parameters"] == {"c": 2.5} and out["settings"]["mll_min"] == 70
    assert math.isfinite(ref.value) and ref.value > 0
    assert out["sigma_pb"] == pytest.approx(2.5 * ref.value, rel=1e-12)
    bad = _xsec("flat-pairs", "--set", "c=20", "--events", "100")
    assert bad.exit_code == 2 and "c" in bad.output


def test_cli_generate_takes_a_registered_name(registered, tmp_path):
    registered("doubled-drell-yan", DoubledDrellYan)
    out = tmp_path / "x.h5"
    # fails after parsing the name: the detector card does not exist
    res = CliRunner().invoke(cli, ["generate", "doubled-drell-yan", "--events", "10",
                                   "--detector", str(tmp_path / "none.json"), "-o", str(out)])
    assert res.exit_code == 2 and "none.json" in res.output
    assert "Invalid value for PROCESS" not in res.output
    res = CliRunner().invoke(cli, ["generate", "not-registered", "--events", "10",
                                   "-o", str(out)])
    assert res.exit_code == 2 and "Invalid value for PROCESS" in res.output
    assert "doubled-drell-yan" in res.output  # the message lists the registered names
