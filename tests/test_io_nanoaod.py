"""Tests of forward.io.nanoaod and forward.io.read: NanoAOD-style files written here with
uproot/h5py from numpy/awkward arrays, read back and compared with references computed
independently in numpy; every refusal names the file and the branch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forward.detector import RecoEvents
from forward.eventset import EventSet
from forward.io import read_events, read_nanoaod, save_hdf5, write_root

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")
h5py = pytest.importorskip("h5py")

_LEPTON_MASS = {"Electron": 0.000511, "Muon": 0.10566, "Photon": 0.0}
_TYPE = {"Electron": 0, "Muon": 1, "Photon": 2, "Jet": 3}


def _content(n=40, seed=7, btag_float=True):
    """Per-collection counts and flat float32 values; event 0 has no objects at all,
    event 1 has no jets, some events have 0 jets anyway."""
    rng = np.random.default_rng(seed)
    out = {}
    for c, fields in (("Electron", ("pt", "eta", "phi", "charge")),
                      ("Muon", ("pt", "eta", "phi", "charge")),
                      ("Photon", ("pt", "eta", "phi")),
                      ("Jet", ("pt", "eta", "phi", "mass", "btag"))):
        counts = rng.integers(0, 4, n).astype(np.int32)
        counts[0] = 0
        if c == "Jet":
            counts[1] = 0
        tot = int(counts.sum())
        vals = {"pt": rng.uniform(5, 200, tot).astype(np.float32),
                "eta": rng.uniform(-2.5, 2.5, tot).astype(np.float32),
                "phi": rng.uniform(-math.pi, math.pi, tot).astype(np.float32)}
        if "charge" in fields:
            vals["charge"] = rng.choice(np.array([-1, 1], dtype=np.int32), tot)
        if c == "Jet":
            vals["mass"] = rng.uniform(0, 20, tot).astype(np.float32)
            vals["btag"] = (rng.uniform(0, 1, tot).astype(np.float32) if btag_float
                            else rng.integers(0, 2, tot).astype(np.int32))
        out[c] = (counts, vals)
    out["MET_pt"] = rng.uniform(0, 100, n).astype(np.float32)
    out["MET_phi"] = rng.uniform(-math.pi, math.pi, n).astype(np.float32)
    return out


def _reference(content, collections=("Electron", "Muon", "Photon", "Jet"), threshold=0.5,
               masses=None):
    """Per event: list of (E, px, py, pz, type, charge) sorted by pT descending, in numpy."""
    n = len(content["MET_pt"])
    rows = [[] for _ in range(n)]
    for c in collections:
        counts, v = content[c]
        start = np.concatenate([[0], np.cumsum(counts)])
        for i in range(n):
            for j in range(start[i], start[i + 1]):
                pt, eta, phi = (float(v[f][j]) for f in ("pt", "eta", "phi"))
                if c == "Jet":
                    m = float(v["mass"][j])
                elif masses is not None and c in masses:
                    m = float(masses[c][j])
                else:
                    m = _LEPTON_MASS[c]
                px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
                e = np.sqrt(px * px + py * py + pz * pz + m * m)
                t = _TYPE[c]
                if c == "Jet":
                    b = v["btag"][j]
                    t = 4 if (b >= threshold if b.dtype.kind == "f" else b != 0) else 3
                q = int(v["charge"][j]) if "charge" in v else 0
                rows[i].append((pt, e, px, py, pz, t, q))
    return [sorted(r, key=lambda o: -o[0]) for r in rows]


def _check(reco: RecoEvents, content, ref, met=True):
    n = len(ref)
    m = max(len(r) for r in ref)
    assert isinstance(reco, RecoEvents) and len(reco) == n
    assert reco.momenta.shape == (n, m, 4) and reco.momenta.dtype == torch.float64
    exp_p = np.zeros((n, m, 4))
    exp_t = np.full((n, m), -1)
    exp_q = np.zeros((n, m), dtype=np.int64)
    for i, r in enumerate(ref):
        for j, o in enumerate(r):
            exp_p[i, j] = o[1:5]
            exp_t[i, j], exp_q[i, j] = o[5], o[6]
    np.testing.assert_allclose(reco.momenta.numpy(), exp_p, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(reco.types.numpy(), exp_t)
    np.testing.assert_array_equal(reco.charges.numpy(), exp_q)
    np.testing.assert_array_equal(reco.mask.numpy(), exp_t >= 0)
    np.testing.assert_array_equal(reco.particle_index.numpy(), np.full((n, m), -1))
    np.testing.assert_array_equal(reco.counts.numpy(),
                                  np.stack([(exp_t == c).sum(-1) for c in range(5)], -1))
    assert bool(reco.passed.all())
    np.testing.assert_array_equal(reco.hard_index.numpy(), np.arange(n))
    if met:
        mp = content["MET_pt"].astype(np.float64)
        ph = content["MET_phi"].astype(np.float64)
        exp_met = np.stack([mp * np.cos(ph), mp * np.sin(ph)], -1)
    else:
        exp_met = -exp_p[..., 1:3].sum(1)
    np.testing.assert_allclose(reco.met.numpy(), exp_met, rtol=1e-12, atol=1e-12)


def _jagged(counts, flat):
    return ak.unflatten(flat, counts)


def _ak_dict(content):
    d = {c: ak.zip({f: _jagged(content[c][0], a) for f, a in content[c][1].items()})
         for c in ("Electron", "Muon", "Photon", "Jet")}
    d["MET_pt"], d["MET_phi"] = content["MET_pt"], content["MET_phi"]
    return d


def _write_root_standard(path, d, tree="Events"):
    """NanoAOD layout: counter nX and jagged X_field branches."""
    with uproot.recreate(path) as f:
        types = {k: v.type if hasattr(v, "layout") else v.dtype for k, v in d.items()}
        f.mktree(tree, types, field_name=lambda o, i: f"{o}_{i}", counter_name=lambda o: f"n{o}")
        f[tree].extend(d)


def _write_h5(path, content, group="Events", extra=None, drop=()):
    with h5py.File(path, "w") as f:
        g = f.create_group(group) if group else f
        for c in ("Electron", "Muon", "Photon", "Jet"):
            counts, vals = content[c]
            if f"n{c}" not in drop:
                g.create_dataset(f"n{c}", data=counts)
            for name, a in vals.items():
                if f"{c}_{name}" not in drop:
                    g.create_dataset(f"{c}_{name}", data=a)
        for name in ("MET_pt", "MET_phi"):
            if name not in drop:
                g.create_dataset(name, data=content[name])
        for name, a in (extra or {}).items():
            if name in g:
                del g[name]
            g.create_dataset(name, data=a)


def test_root_nanoaod_layout_matches_numpy_reference(tmp_path):
    content = _content()
    path = tmp_path / "nano.root"
    _write_root_standard(path, _ak_dict(content))
    with uproot.open(path) as f:  # the layout this test means to exercise
        assert {"nElectron", "Electron_pt", "Jet_btag", "MET_pt"} <= set(f["Events"].keys())
        assert f["Events"]["Electron_pt"].array(library="ak").type.content.content.primitive == \
            "float32"
    reco = read_nanoaod(path)
    _check(reco, content, _reference(content))
    assert int(reco.counts[:, 3:].sum(-1)[1]) == 0  # event 1 has no jets
    assert int(reco.n_objects[0]) == 0


def test_root_setitem_layout_reads_the_same(tmp_path):
    """``f[tree] = dict`` (uproot 5.7 writes an RNTuple with ``Electron.pt`` fields)."""
    content = _content(seed=3)
    path = tmp_path / "split.root"
    with uproot.recreate(path) as f:
        f["Events"] = _ak_dict(content)
    _check(read_nanoaod(path), content, _reference(content))


@pytest.mark.parametrize("group", ["Events", None])
def test_hdf5_layout_with_masses_and_integer_btag(tmp_path, group):
    content = _content(seed=11, btag_float=False)
    rng = np.random.default_rng(5)
    masses = {c: rng.uniform(0, 0.2, int(content[c][0].sum())).astype(np.float32)
              for c in ("Electron", "Muon")}
    path = tmp_path / "nano.h5"
    _write_h5(path, content, group=group,
              extra={"Electron_mass": masses["Electron"], "Muon_mass": masses["Muon"]})
    reco = read_nanoaod(path)
    _check(reco, content, _reference(content, masses=masses))
    via = read_events(path)
    for name in RecoEvents.field_names():
        assert torch.equal(getattr(via, name), getattr(reco, name)), name


def test_btag_threshold_and_dtype(tmp_path):
    content = _content(seed=2)
    path = tmp_path / "nano.h5"
    _write_h5(path, content)
    reco = read_nanoaod(path, btag_threshold=0.8, dtype=torch.float32)
    assert reco.momenta.dtype == torch.float32 and reco.met.dtype == torch.float32
    ref = _reference(content, threshold=0.8)
    np.testing.assert_array_equal(reco.types.numpy(),
                                  read_nanoaod(path, btag_threshold=0.8).types.numpy())
    n_b = sum(o[5] == 4 for r in ref for o in r)
    assert int((reco.types == 4).sum()) == n_b > 0
    assert int((read_nanoaod(path).types == 4).sum()) > n_b  # lower threshold tags more


def test_collections_subset(tmp_path):
    content = _content(seed=4)
    path = tmp_path / "nano.root"
    _write_root_standard(path, _ak_dict(content))
    reco = read_nanoaod(path, collections=["MET", "Muon"])
    _check(reco, content, _reference(content, collections=("Muon",)))
    jets = read_nanoaod(path, collections=("Jet",))
    _check(jets, content, _reference(content, collections=("Jet",)), met=False)


def _err_file(tmp_path, content, name="bad.h5", **kw):
    path = tmp_path / name
    _write_h5(path, content, **kw)
    return path


@pytest.mark.parametrize("case", [
    "negative_count", "count_mismatch", "nan", "negative_pt", "charge", "float_counter",
    "inf_met", "missing_branch",
])
def test_hdf5_refusals_name_file_and_dataset(tmp_path, case):
    content = _content(n=10, seed=1)
    counts, vals = content["Electron"]
    kw, branch = {}, None
    if case == "negative_count":
        c = counts.copy()
        c[3] = -1
        kw, branch, what = {"extra": {"nElectron": c}}, "nElectron", ">= 0"
    elif case == "count_mismatch":
        kw, branch, what = {"extra": {"Electron_eta": vals["eta"][:-1]}}, "Electron_eta", \
            "sum of the counts"
    elif case == "nan":
        a = vals["eta"].copy()
        a[0] = np.nan
        kw, branch, what = {"extra": {"Electron_eta": a}}, "Electron_eta", "non-finite"
    elif case == "negative_pt":
        a = vals["pt"].copy()
        a[1] = -3.0
        kw, branch, what = {"extra": {"Electron_pt": a}}, "Electron_pt", "pT must be >= 0"
    elif case == "charge":
        a = vals["charge"].copy()
        a[2] = 0
        kw, branch, what = {"extra": {"Electron_charge": a}}, "Electron_charge", r"\+1 or -1"
    elif case == "float_counter":
        c = counts.astype(np.float64)
        c[4] += 0.5
        kw, branch, what = {"extra": {"nElectron": c}}, "nElectron", "integers"
    elif case == "inf_met":
        a = content["MET_pt"].copy()
        a[5] = np.inf
        kw, branch, what = {"extra": {"MET_pt": a}}, "MET_pt", "non-finite"
    else:
        kw, branch, what = {"drop": ("Electron_charge",)}, "Electron_charge", "does not have"
    path = _err_file(tmp_path, content, **kw)
    with pytest.raises(ValueError, match=rf"bad\.h5.*'{branch}'.*{what}"):
        read_nanoaod(path)


def test_refusals_of_collections_and_events(tmp_path):
    content = _content(n=10, seed=1)
    path = _err_file(tmp_path, content, drop=("nPhoton",))
    with pytest.raises(ValueError, match=r"bad\.h5.*Photon.*'nPhoton' is missing"):
        read_nanoaod(path, collections=["Photon"])
    with pytest.raises(ValueError, match=r"collections: expected .*'Tau'"):
        read_nanoaod(path, collections=["Tau"])
    # the other collections are still read when Photon is not asked for
    assert int(read_nanoaod(path).counts[:, 2].sum()) == 0
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"empty\.h5.*no collection found.*nElectron"):
        read_nanoaod(empty)
    zero = tmp_path / "zero.h5"
    with h5py.File(zero, "w") as f:
        g = f.create_group("Events")
        g.create_dataset("nMuon", data=np.zeros(0, dtype=np.int32))
        for v in ("pt", "eta", "phi", "charge"):
            g.create_dataset(f"Muon_{v}", data=np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"zero\.h5.*zero events"):
        read_nanoaod(zero)


def test_root_refusals(tmp_path):
    content = _content(n=6, seed=9)
    counts, vals = content["Muon"]
    wrong = counts.copy()
    wrong[2] += 1
    path = tmp_path / "bad.root"
    d = {"nMuon": wrong, "Muon_pt": _jagged(counts, vals["pt"]),
         "Muon_eta": _jagged(counts, vals["eta"]), "Muon_phi": _jagged(counts, vals["phi"]),
         "Muon_charge": _jagged(counts, vals["charge"])}
    with uproot.recreate(path) as f:
        f["Events"] = d
    with pytest.raises(ValueError, match=r"bad\.root.*'Muon_pt'.*event 2 has"):
        read_nanoaod(path)
    with pytest.raises(ValueError, match=r"bad\.root.*no TTree or RNTuple 'Delphes'.*Events"):
        read_nanoaod(path, tree="Delphes")


def test_read_events_dispatch_and_errors(tmp_path):
    content = _content(n=8, seed=5)
    nano = tmp_path / "nano.root"
    _write_root_standard(nano, _ak_dict(content), tree="Tree")
    reco = read_events(nano, tree="Tree")
    _check(reco, content, _reference(content))
    with pytest.raises(ValueError, match=r"final_state: .*nano\.root.*NanoAOD"):
        read_events(nano, tree="Tree", final_state=(11, -11))
    g = torch.Generator().manual_seed(0)
    p = torch.rand(8, 2, 4, generator=g, dtype=torch.float64) + torch.tensor([5.0, 0, 0, 0])
    es = EventSet(process="drell-yan", momenta=p, x1=torch.full((8,), 0.1, dtype=torch.float64),
                  x2=torch.full((8,), 0.2, dtype=torch.float64), pids=torch.tensor([11, -11]),
                  sqrt_s=13000.0)
    own_h5 = save_hdf5(es, tmp_path / "own.h5")
    own_root = write_root(es, tmp_path / "own.root")
    for own in (own_h5, own_root):
        back = read_events(own)
        assert isinstance(back, EventSet) and torch.equal(back.momenta, es.momenta)
        with pytest.raises(TypeError, match=r"\['tree'\].*own\."):
            read_events(own, tree="Events")
    for name, text in (("fake.root", "not a root file\n"), ("fake.h5", "plain text\n"),
                       ("fake.lhe", "<html></html>\n"), ("fake.lhe.gz", "not gzip\n"),
                       ("events.csv", "a,b\n")):
        bad = tmp_path / name
        bad.write_text(text)
        with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}.*"):
            read_events(bad)
    for name in ("fake.root", "fake.h5", "fake.lhe.gz", "events.csv"):
        with pytest.raises(ValueError, match=r"accepts LHE .*ROOT .*HDF5"):
            read_events(tmp_path / name)
    with pytest.raises(FileNotFoundError, match=r"missing\.root"):
        read_events(tmp_path / "missing.root")


def test_packing_convention(tmp_path):
    """The layout forward.detector produces: objects packed to the front, pT descending,
    charges ±1 exactly for leptons."""
    content = _content(n=30, seed=12)
    path = tmp_path / "nano.h5"
    _write_h5(path, content)
    reco = read_nanoaod(path)
    pt = torch.hypot(reco.momenta[..., 1], reco.momenta[..., 2])
    assert bool((pt[:, :-1] >= pt[:, 1:]).all())
    assert bool((reco.mask[:, :-1] >= reco.mask[:, 1:]).all())
    lep = (reco.types == 0) | (reco.types == 1)
    assert bool((reco.charges.abs() == lep.long()).all())
