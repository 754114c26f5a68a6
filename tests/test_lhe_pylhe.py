"""LHE reading through pylhe and invsim's own reader: a MadGraph-style file with weights.

The file written here looks like MadGraph5_aMC@NLO's: ℓ⁺ listed before ℓ⁻, an
intermediate Z (status 2), two processes in ``<init>`` (IDPRUP 1 and 2), a
``<generator>`` tag inside ``<init>``, ``<mgrwt>`` blocks and ``<rwgt>`` weights with
single-quoted numeric ids declared in ``<initrwgt>`` weight groups.
"""

from __future__ import annotations

import math

import pytest
import torch

import forward.io.lhe as lhe_module
from forward.io import read_events, read_lhe, write_lhe

E_BEAM = 6500.0
WEIGHT_IDS = ("1001", "1002", "1003")


def _events(n: int = 6, seed: int = 3) -> list[dict]:
    """Massless e+ e- pairs from q q̄ with random x1, x2 and angles (exact floats)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        x1, x2 = (0.002 + 0.1 * torch.rand(2, generator=g, dtype=torch.float64)).tolist()
        cos_t, phi = (2 * torch.rand(1, generator=g, dtype=torch.float64) - 1).item(), \
            (2 * math.pi * torch.rand(1, generator=g, dtype=torch.float64)).item()
        e1, e2 = x1 * E_BEAM, x2 * E_BEAM
        m = 2 * math.sqrt(e1 * e2)
        beta = (e1 - e2) / (e1 + e2)
        gam = 1 / math.sqrt(1 - beta * beta)
        sin_t = math.sqrt(1 - cos_t * cos_t)
        legs = []
        for sign in (1, -1):
            px, py, pz = (sign * m / 2 * sin_t * math.cos(phi), sign * m / 2 * sin_t *
                          math.sin(phi), sign * m / 2 * cos_t)
            e = m / 2
            legs.append((gam * (e + beta * pz), px, py, gam * (pz + beta * e)))
        proc = 1 + i % 2
        out.append({"x": (x1, x2), "e": (e1, e2), "minus": legs[0], "plus": legs[1],
                    "proc": proc, "w": 1500.0 if proc == 1 else 700.0,
                    "rwgt": [1500.0 + 10 * i, 1480.0 - i, 1520.0 + 0.5 * i]})
    return out


def _madgraph_text(events: list[dict], *, extra_gluon: int | None = None,
                   nup_plus: int = 0, drop_weight: int | None = None) -> str:
    lines = ['<LesHouchesEvents version="3.0">', "<header>",
             "<MGVersion>", "3.5.0", "</MGVersion>", "<initrwgt>",
             "<weightgroup name='Central scale variation' combine='envelope'>",
             "<weight id='1001'> MUR=1.0 MUF=1.0 </weight>",
             "<weight id='1002'> MUR=2.0 MUF=1.0 </weight>",
             "<weight id='1003'> MUR=0.5 MUF=1.0 </weight>",
             "</weightgroup>", "</initrwgt>", "</header>", "<init>",
             f"2212 2212 {E_BEAM!r} {E_BEAM!r} 0 0 303600 303600 -4 2",
             "1.5e+03 2.0e+00 1.5e+03 1", "7.0e+02 1.0e+00 7.0e+02 2",
             "<generator name='MadGraph5_aMC@NLO' version='3.5.0'>please cite 1405.0301 "
             "</generator>", "</init>"]
    for i, ev in enumerate(events):
        glu = extra_gluon == i
        lines += ["<event>", f" {5 + glu + nup_plus * (i == 0)} {ev['proc']} {ev['w']!r} "
                  "9.118760e+01 7.546771e-03 1.300000e-01"]
        e1, e2 = ev["e"]
        lines.append(f" 2 -1 0 0 501 0 0.0 0.0 {e1!r} {e1!r} 0.0 0.0 1.0")
        lines.append(f" -2 -1 0 0 0 {502 if glu else 501} 0.0 0.0 {-e2!r} {e2!r} 0.0 0.0 -1.0")
        z = [a + b for a, b in zip(ev["plus"], ev["minus"], strict=True)]
        zm = math.sqrt(max(z[0] ** 2 - z[1] ** 2 - z[2] ** 2 - z[3] ** 2, 0.0))
        lines.append(f" 23 2 1 2 0 0 {z[1]!r} {z[2]!r} {z[3]!r} {z[0]!r} {zm!r} 0.0 9.0")
        for pid, p in ((-11, ev["plus"]), (11, ev["minus"])):  # ℓ⁺ first, as MadGraph
            lines.append(f" {pid} 1 3 3 0 0 {p[1]!r} {p[2]!r} {p[3]!r} {p[0]!r} 0.0 0.0 1.0")
        if glu:
            lines.append(" 21 1 1 2 501 502 1.0 0.0 0.0 1.0 0.0 0.0 1.0")
        lines += ["<mgrwt>", "<rscale>  0 0.91187600E+02</rscale>", "</mgrwt>", "<rwgt>"]
        lines += [f"<wgt id='{wid}'> {v!r} </wgt>" for wid, v in zip(WEIGHT_IDS, ev["rwgt"],
                                                                        strict=True)
                  if not (drop_weight == i and wid == "1003")]
        lines += ["</rwgt>", "</event>"]
    lines.append("</LesHouchesEvents>")
    return "\n".join(lines) + "\n"


@pytest.fixture()
def mg_file(tmp_path):
    path = tmp_path / "madgraph.lhe"
    path.write_text(_madgraph_text(_events()))
    return path


def _same(a, b) -> None:
    for name in ("momenta", "x1", "x2", "pids", "weights", "incoming_pids", "process_ids"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert list(a.weights_named) == list(b.weights_named)
    for name, w in a.weights_named.items():
        assert torch.equal(w, b.weights_named[name]), name
    assert (a.cross_section, a.cross_section_error, a.metadata) == \
        (b.cross_section, b.cross_section_error, b.metadata)


def test_madgraph_file_both_readers_agree(mg_file):
    pytest.importorskip("pylhe")
    evs = _events()
    es = read_lhe(mg_file, reader="pylhe", final_state=(11, -11))
    _same(es, read_lhe(mg_file, reader="invsim", final_state=(11, -11)))
    _same(es, read_lhe(mg_file, final_state=(11, -11)))  # auto: pylhe
    # ℓ⁻ first now; the Z (status 2) dropped
    assert es.pids.tolist() == [11, -11]
    assert es.momenta[:, 0].tolist() == [list(ev["minus"]) for ev in evs]
    assert es.momenta[:, 1].tolist() == [list(ev["plus"]) for ev in evs]
    assert es.x1.tolist() == [ev["x"][0] * E_BEAM / E_BEAM for ev in evs]
    assert es.process_ids.tolist() == [ev["proc"] for ev in evs]
    assert list(es.weights_named) == list(WEIGHT_IDS)
    for j, wid in enumerate(WEIGHT_IDS):
        assert es.weights_named[wid].tolist() == [ev["rwgt"][j] for ev in evs]
    # σ: the sum of the processes' XSECUP, errors in quadrature
    assert es.cross_section == 2200.0 and es.cross_section_error == math.hypot(2.0, 1.0)
    assert es.metadata["lhe_processes"] == [
        {"id": 1, "cross_section": 1500.0, "error": 2.0, "xmax": 1500.0},
        {"id": 2, "cross_section": 700.0, "error": 1.0, "xmax": 700.0}]
    assert es.sqrt_s == 2 * E_BEAM


def test_pylhe_really_reads_and_invsim_is_the_fallback(mg_file, monkeypatch):
    pytest.importorskip("pylhe")
    ref = read_lhe(mg_file, reader="invsim")

    def refuse(path):
        raise AssertionError("invsim's reader was used")

    monkeypatch.setattr(lhe_module, "_scan", refuse)
    _same(read_lhe(mg_file, reader="pylhe"), ref)
    monkeypatch.undo()
    # without pylhe: invsim's reader, the same events; reader="pylhe" is an ImportError
    monkeypatch.setitem(__import__("sys").modules, "pylhe", None)
    _same(read_lhe(mg_file), ref)
    with pytest.raises(ImportError, match="pip install pylhe"):
        read_lhe(mg_file, reader="pylhe")
    with pytest.raises(ValueError, match="reader: expected 'auto', 'pylhe' or 'invsim'"):
        read_lhe(mg_file, reader="xml")


def test_round_trip_of_the_madgraph_file_keeps_weights_and_processes(mg_file, tmp_path):
    es = read_lhe(mg_file, final_state=(11, -11))
    out = write_lhe(es, tmp_path / "again.lhe.gz")
    for reader in ("auto", "invsim"):
        back = read_events(out, reader=reader)
        for name in ("momenta", "x1", "x2", "pids", "weights", "incoming_pids",
                     "process_ids"):
            assert torch.equal(getattr(back, name), getattr(es, name)), name
        assert list(back.weights_named) == list(WEIGHT_IDS)
        for wid in WEIGHT_IDS:
            assert torch.equal(back.weights_named[wid], es.weights_named[wid]), wid
        assert back.cross_section == es.cross_section
    pylhe = pytest.importorskip("pylhe")
    # pylhe reads our file too: the weights under their ids, IDPRUP per event
    f = pylhe.LHEFile.fromfile(str(out), generator=False)
    assert f.header.initrwgt.list_weights_ids() == list(WEIGHT_IDS)
    evs = list(f.events)
    assert [e.eventinfo.pid for e in evs] == es.process_ids.tolist()
    assert [e.weights["1002"] for e in evs] == es.weights_named["1002"].tolist()
    assert [p.xSection for p in f.init.procInfo] == pytest.approx([1500.0, 700.0], rel=1e-15)


@pytest.mark.parametrize("reader", ["auto", "invsim"])
def test_malformed_files_are_named_by_line(tmp_path, reader):
    evs = _events()
    text = _madgraph_text(evs)
    lines = text.splitlines()
    first_event = lines.index("<event>") + 1  # 1-based line of the first <event>
    cut = tmp_path / "cut.lhe"
    cut.write_text("\n".join(lines[: first_event + 20]) + "\n")  # inside the 2nd event
    second = [i for i, s in enumerate(lines, 1) if s == "<event>"][1]
    with pytest.raises(ValueError, match=rf"ends inside the event started at line {second}"):
        read_lhe(cut, reader=reader)
    nup = tmp_path / "nup.lhe"
    nup.write_text(_madgraph_text(evs, nup_plus=1))
    with pytest.raises(ValueError, match=rf"line {first_event + 1}: the event header says "
                                         r"NUP = 6 particles, the event has 5 lines"):
        read_lhe(nup, reader=reader)
    odd = tmp_path / "weights.lhe"
    odd.write_text(_madgraph_text(evs, drop_weight=2))
    third = [i for i, s in enumerate(lines, 1) if s == "<event>"][2]
    with pytest.raises(ValueError, match=rf"line {third}: the event's weight ids"):
        read_lhe(odd, reader=reader)


@pytest.mark.parametrize("reader", ["auto", "invsim"])
def test_merged_sample_is_kept_with_pad(tmp_path, reader):
    path = tmp_path / "merged.lhe"
    path.write_text(_madgraph_text(_events(), extra_gluon=4))
    with pytest.raises(ValueError, match=r"multiplicity varies between events \(\[2, 3\]\).*"
                                         r"pad=True"):
        read_lhe(path, reader=reader)
    es = read_lhe(path, reader=reader, pad=True)
    assert es.momenta.shape == (6, 3, 4) and es.metadata["lhe_multiplicities"] == [2, 3]
    assert es.pids[4].tolist() == [-11, 11, 21]
    assert bool((es.pids[[0, 1, 2, 3, 5], 2] == 0).all())
    assert bool((es.momenta[[0, 1, 2, 3, 5], 2] == 0).all())
    assert es.momenta[4, 2].tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="final_state, pad"):
        read_lhe(path, reader=reader, pad=True, final_state=(11, -11))
    # written back as a merged sample (no id-0 particles), read back the same
    out = write_lhe(es, tmp_path / "merged-again.lhe")
    assert " 0 1 1 2 " not in out.read_text()
    with pytest.raises(ValueError, match="pad=True"):
        read_lhe(out, reader=reader)
    back = read_lhe(out, reader=reader, pad=True)
    for name in ("momenta", "x1", "x2", "pids", "weights", "process_ids"):
        assert torch.equal(getattr(back, name), getattr(es, name)), name
    assert back.weights_named.keys() == es.weights_named.keys()
