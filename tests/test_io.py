"""Tests of forward.eventset and forward.io: exact round trips, versions, overwrite refusal."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from _helpers import reseal_hdf5

from forward import kinematics as kin
from forward.detector import Detector, RecoEvents
from forward.eventset import FORMAT_VERSION, EventSet, sample_flavours
from forward.io import (
    colour_flow,
    load_hdf5,
    read_lhe,
    read_root,
    save_hdf5,
    write_lhe,
    write_root,
)


def _event_set(n=300, seed=0, with_reco=True, dtype=torch.float64) -> EventSet:
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, 5, generator=g, dtype=torch.float64)
    m = 60 + 60 * r[:, 0]
    ct, ph = 2 * r[:, 1] - 1, 2 * math.pi * r[:, 2]
    st = torch.sqrt(1 - ct**2)
    half = 0.5 * m
    k = torch.stack([half, half * st * ph.cos(), half * st * ph.sin(), half * ct], -1)
    kb = k * torch.tensor([1.0, -1, -1, -1], dtype=torch.float64)
    y = 2 * r[:, 3] - 1
    x1, x2 = m / 13000 * y.exp(), m / 13000 * (-y).exp()
    beta = torch.stack([torch.zeros(n), torch.zeros(n), y.tanh()], -1).to(torch.float64)
    p = kin.boost(torch.stack([k, kb], 1), beta[:, None, :]).to(dtype)
    inc = torch.tensor([[2, -2], [-1, 1], [3, -3]])[torch.randint(0, 3, (n,), generator=g)]
    es = EventSet(
        process="drell-yan", momenta=p, x1=x1.to(dtype), x2=x2.to(dtype),
        pids=torch.tensor([11, -11]), sqrt_s=13000.0,
        weights=(r[:, 4] * 3.0 + 1e-3).to(dtype), incoming_pids=inc,
        parameters={"mz": 91.1876, "gz": 2.4952}, settings={"mll_min": 60.0, "flavours": [11]},
        cross_section=3060.19, cross_section_error=1.81, seed=seed,
        metadata={"card": "cms", "note": "a <tagged> & quoted \"text\""},
    )
    if with_reco:
        es.reco = Detector({"selection": {"min_leptons": 2}})(es.objects(), seed=seed + 1)
    return es


def _assert_same(a: EventSet, b: EventSet, *, reco=True):
    for name in ("momenta", "x1", "x2", "pids", "weights", "incoming_pids"):
        ta, tb = getattr(a, name), getattr(b, name)
        assert ta.dtype == tb.dtype, name
        assert torch.equal(ta, tb), name
    for name in ("process", "sqrt_s", "parameters", "settings", "cross_section",
                 "cross_section_error", "seed", "metadata", "format_version"):
        assert getattr(a, name) == getattr(b, name), name
    if reco:
        for name in RecoEvents.field_names():
            ta, tb = getattr(a.reco, name), getattr(b.reco, name)
            assert ta.dtype == tb.dtype and torch.equal(ta, tb), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_hdf5_round_trip_is_bit_exact(tmp_path, dtype):
    es = _event_set(dtype=dtype)
    path = save_hdf5(es, tmp_path / "ev.h5")
    back = load_hdf5(path)
    _assert_same(es, back)
    assert len(back.reco) == len(es) and back.reco.passed.any()


def test_hdf5_without_optional_parts(tmp_path):
    es = _event_set(with_reco=False)
    es.incoming_pids, es.seed, es.cross_section, es.cross_section_error = None, None, None, None
    back = load_hdf5(save_hdf5(es, tmp_path / "ev.h5"))
    assert back.reco is None and back.incoming_pids is None and back.seed is None
    assert back.cross_section is None and torch.equal(back.momenta, es.momenta)


def test_hdf5_refuses_to_overwrite(tmp_path):
    path = tmp_path / "ev.h5"
    path.write_text("precious")
    es = _event_set(n=10)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_hdf5(es, path)
    assert path.read_text() == "precious"
    save_hdf5(es, path, overwrite=True)
    assert torch.equal(load_hdf5(path).momenta, es.momenta)
    assert [p.name for p in tmp_path.iterdir()] == ["ev.h5"]  # no temporary left behind


def test_hdf5_version_and_missing_data_errors(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = save_hdf5(_event_set(n=10), tmp_path / "ev.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    reseal_hdf5(path)  # as a newer invsim would write it
    with pytest.raises(ValueError, match=rf"format version {FORMAT_VERSION + 1} .* reads format "
                                         rf"versions 1 to {FORMAT_VERSION}"):
        load_hdf5(path)
    path = save_hdf5(_event_set(n=10), tmp_path / "ev2.h5")
    with h5py.File(path, "a") as f:
        del f["hard/x2"]
    reseal_hdf5(path)
    with pytest.raises(ValueError, match="missing required dataset 'hard/x2'"):
        load_hdf5(path)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1.0]
    with pytest.raises(ValueError, match="not an invsim event file"):
        load_hdf5(tmp_path / "other.h5")


@pytest.mark.parametrize("suffix", [".lhe", ".lhe.gz"])
def test_lhe_round_trip_is_exact(tmp_path, suffix):
    es = _event_set(with_reco=False)
    path = write_lhe(es, tmp_path / f"ev{suffix}")
    back = read_lhe(path)
    _assert_same(es, back, reco=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_lhe(es, path)


def test_lhe_content_for_pythia(tmp_path):
    es = _event_set(n=5, with_reco=False)
    text = write_lhe(es, tmp_path / "ev.lhe").read_text()
    assert text.startswith('<LesHouchesEvents version="3.0">')
    assert text.count("<event ") == 5 and '<event index="4">' in text
    init = text.split("<init>\n")[1].split("\n")
    assert init[0].split()[:4] == ["2212", "2212", "6.5000000000000000e+03",
                                   "6.5000000000000000e+03"]
    assert init[0].split()[8] == "-4"  # weighted events
    # x of the incoming partons is the energy over the beam energy (to printed precision)
    first = text.split('<event index="0">\n')[1].split("\n")
    e_in = float(first[1].split()[9])
    assert e_in == pytest.approx(float(es.x1[0]) * 6500.0, rel=1e-15)
    # momentum conservation of the written event
    moms = [[float(v) for v in line.split()[6:10]] for line in first[1:5]]
    tot = [moms[0][c] + moms[1][c] - moms[2][c] - moms[3][c] for c in range(4)]
    assert max(abs(t) for t in tot) < 1e-9


def test_lhe_read_by_pylhe(tmp_path):
    """An independent LHE reader (pylhe, optional) sees the same events."""
    pylhe = pytest.importorskip("pylhe")
    es = _event_set(n=20, with_reco=False)
    f = pylhe.LHEFile.fromfile(write_lhe(es, tmp_path / "ev.lhe"))
    assert (f.init.initInfo.energyA, f.init.initInfo.energyB) == (6500.0, 6500.0)
    events = list(f.events)
    assert len(events) == 20
    for i, ev in enumerate(events):
        assert ev.attributes["index"] == str(i)
        assert ev.eventinfo.weight == float(es.weights[i])
        parts = ev.particles
        assert [int(p.id) for p in parts] == es.incoming_pids[i].tolist() + es.pids.tolist()
        assert [int(p.status) for p in parts] == [-1, -1, 1, 1]
        got = torch.tensor([[p.e, p.px, p.py, p.pz] for p in parts[2:]], dtype=torch.float64)
        assert torch.equal(got, es.momenta[i])
        assert parts[0].e == float(es.x1[i]) * 6500.0


def test_lhe_without_incoming_flavours_is_an_error(tmp_path):
    es = _event_set(n=5, with_reco=False)
    es.incoming_pids = None
    with pytest.raises(ValueError, match="incoming_pids"):
        write_lhe(es, tmp_path / "ev.lhe")


@pytest.mark.parametrize(
    ("inc", "out"),
    [((2, -2), (11, -11)), ((21, 21), (6, -6)), ((-1, 1), (6, -6)), ((21, 2), (21, 2)),
     ((21, 21), (5, -11, 12, -5, 2, -1)), ((1, -1), (5, 2, -1, -5, 11, -12)), ((21, 21), (25,))],
)
def test_colour_flow_conserves_colour(inc, out):
    tags = colour_flow(inc, out)
    n_in = len(inc)
    # crossing: incoming colour = outgoing anticolour; every tag appears exactly twice
    # (once as a 'source', once as a 'sink')
    src = Counter([c for c, _ in tags[n_in:] if c] + [a for _, a in tags[:n_in] if a])
    snk = Counter([a for _, a in tags[n_in:] if a] + [c for c, _ in tags[:n_in] if c])
    assert src == snk and all(v == 1 for v in src.values())
    for pid, (c, a) in zip(list(inc) + list(out), tags, strict=True):
        coloured = abs(pid) <= 6 or pid == 21
        assert (c != 0 or a != 0) == coloured
        assert (c != 0 and a != 0) == (pid == 21)
    with pytest.raises(ValueError, match="colours do not balance"):
        colour_flow((2, 21), (11, -11))


def test_root_round_trip_is_exact(tmp_path):
    pytest.importorskip("uproot")
    es = _event_set()
    path = write_root(es, tmp_path / "ev.root")
    back = read_root(path)
    _assert_same(es, back)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_root(es, path)
    import uproot

    with uproot.open(path) as f:
        keys = set(f["reco"].keys())
        assert {"nreco", "reco_E", "reco_type", "met_x", "passed"} <= keys
        assert int(f["reco"]["nreco"].array(library="np").sum()) == int(es.reco.mask.sum())


def test_sample_flavours_frequencies():
    # 3 channels with fixed weights; frequencies within 5 binomial sigma
    # (each check fails with probability < 6e-7 for a correct sampler)
    n = 40_000
    w = torch.tensor([1.0, 2.0, 7.0], dtype=torch.float64).expand(n, 3)
    chans = ((2, -2), (1, -1), (21, 21))
    out = sample_flavours(w, chans, seed=3)
    assert out.shape == (n, 2) and out.dtype == torch.int64
    for (a, b), pr in zip(chans, (0.1, 0.2, 0.7), strict=True):
        f = float(((out[:, 0] == a) & (out[:, 1] == b)).double().mean())
        assert abs(f - pr) < 5 * math.sqrt(pr * (1 - pr) / n)
    assert torch.equal(out, sample_flavours(w, chans, seed=3))
    with pytest.raises(ValueError, match="positive sum"):
        sample_flavours(torch.zeros(2, 3, dtype=torch.float64), chans, seed=1)
    with pytest.raises(ValueError, match="expected shapes"):
        sample_flavours(w[:, :2], chans, seed=1)


def test_event_set_validation():
    es = _event_set(n=4, with_reco=False)
    base = dict(process="x", momenta=es.momenta, x1=es.x1, x2=es.x2, pids=es.pids,
                sqrt_s=13000.0)
    with pytest.raises(ValueError, match=r"pids: expected integer ids of shape \(2,\)"):
        EventSet(**{**base, "pids": torch.tensor([11, -11, 22])})
    with pytest.raises(ValueError, match=r"weights: expected shape \(4,\)"):
        EventSet(**base, weights=torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="weights: 1 NaN"):
        EventSet(**base, weights=torch.tensor([1.0, float("nan"), 1, 1], dtype=torch.float64))
    with pytest.raises(TypeError, match="metadata: expected JSON-serialisable"):
        EventSet(**base, metadata={"f": object()})
    with pytest.raises(ValueError, match="incoming_pids"):
        EventSet(**base, incoming_pids=torch.zeros(4, 3, dtype=torch.int64))
    assert len(EventSet(**base)) == 4 and bool((EventSet(**base).weights == 1).all())


def test_cli_generate_writes_paired_events_and_refuses_overwrite(tmp_path):
    from click.testing import CliRunner

    from invsim.cli import cli

    out = tmp_path / "dy.h5"
    args = ["generate", "drell-yan", "--events", "300", "--set", "mll_min=60", "--set",
            "mll_max=120", "--set", "leptons=both", "--seed", "5", "-o", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    es = load_hdf5(out)
    assert len(es) == 300 and es.reco is not None and es.seed == 5
    assert torch.equal(es.reco.hard_index, torch.arange(300))
    assert es.incoming_pids.shape == (300, 2)
    # the hit-or-miss events' σ against Pythia 8.317 (docs/design.md §4: 3060.19 ± 1.81 pb for
    # ee + μμ): 5σ of the combined error, false-failure rate < 6e-7
    ref, ref_err = 3060.19, 1.81
    assert abs(es.cross_section - ref) < 5 * math.hypot(es.cross_section_error, ref_err)
    mll = kin.mass(es.momenta.sum(1))
    assert bool(((mll > 60) & (mll < 120)).all())
    # ee and μμ each carry half of σ: the number of μμ events is Binomial(300, 1/2);
    # outside 150 ± 5·8.66 with probability < 6e-7
    assert es.pids.shape == (300, 2) and bool((es.pids[:, 0] == -es.pids[:, 1]).all())
    n_mu = int((es.pids[:, 0] == 13).sum())
    assert set(es.pids[:, 0].tolist()) == {11, 13} and abs(n_mu - 150) < 5 * 8.66
    # reco objects carry the flavour of the lepton they came from
    rec = es.reco
    reco_type = rec.types[rec.mask]
    source = es.pids[rec.hard_index.unsqueeze(1).expand_as(rec.mask)[rec.mask],
                     rec.particle_index[rec.mask]].abs()
    assert bool(((reco_type == 0) == (source == 11)).all())
    before = out.read_bytes()
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0 and "--overwrite" in res.output
    assert out.read_bytes() == before
