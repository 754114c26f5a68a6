"""Tests of the canonical hard order: forward.events.order_final_state, read_lhe's and
read_events' final_state keyword (an LHE file with ℓ⁺ first reads like one with ℓ⁻ first)."""

from __future__ import annotations

import math

import pytest
import torch

from forward.detector import Detector
from forward.events import final_state_permutation, order_final_state
from forward.eventset import EventSet
from forward.io import read_events, read_lhe, save_hdf5, write_lhe, write_root

_DILEPTON = (5, -11, 12, -5, 11, -12)


def _momenta(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    p3 = 50 * torch.randn(n, k, 3, generator=g, dtype=torch.float64)
    return torch.cat([p3.norm(dim=-1, keepdim=True), p3], -1)


def _shuffle(momenta, pids, seed):
    """Each event's particles in a random order (and the order used)."""
    n, k = pids.shape
    g = torch.Generator().manual_seed(seed)
    perm = torch.argsort(torch.rand(n, k, generator=g), -1)
    return momenta.gather(1, perm[..., None].expand(n, k, 4)), pids.gather(1, perm), perm


def test_dilepton_any_order_and_lepton_flavours_recovers_canonical_events():
    n = 500
    g = torch.Generator().manual_seed(1)
    # canonical events: (b, ℓ⁺, ν, b̄, ℓ⁻, ν̄) with ee, μμ, eμ, μe, ττ flavours
    lp = torch.tensor([11, 13, 15])[torch.randint(0, 3, (n,), generator=g)]
    lm = torch.tensor([11, 13, 15])[torch.randint(0, 3, (n,), generator=g)]
    five = torch.full((n,), 5)
    pids = torch.stack([five, -lp, lp + 1, -five, lm, -(lm + 1)], -1)
    p = _momenta(n, 6, seed=2)
    ps, ids, _ = _shuffle(p, pids, seed=3)
    assert not torch.equal(ids, pids)
    q, qid = order_final_state(ps, ids, _DILEPTON)
    assert torch.equal(q, p) and torch.equal(qid, pids)
    assert qid.dtype == torch.int64 and q.dtype == torch.float64


def test_drell_yan_both_lepton_flavours_with_lplus_first():
    p = _momenta(6, 2, seed=4)
    ids = torch.tensor([[-11, 11], [11, -11], [-13, 13], [13, -13], [-11, 11], [-13, 13]])
    q, qid = order_final_state(p, ids, (11, -11))
    swap = ids[:, 0] < 0
    expect = torch.where(swap[:, None, None], p.flip(1), p)
    assert torch.equal(q, expect)
    assert qid.tolist() == [[11, -11], [11, -11], [13, -13], [13, -13], [11, -11], [13, -13]]


def test_identical_ids_ordered_by_pt_descending():
    n = 200
    p = _momenta(n, 4, seed=5)
    ids = torch.tensor([22, 11, 22, -11]).expand(n, 4)
    q, qid = order_final_state(p, ids, (11, -11, 22, 22))
    pt = torch.hypot(p[..., 1], p[..., 2])
    hi = torch.where(pt[:, 0] >= pt[:, 2], 0, 2)
    lo = 2 - hi
    rows = torch.arange(n)
    assert torch.equal(q[:, 0], p[:, 1]) and torch.equal(q[:, 1], p[:, 3])
    assert torch.equal(q[:, 2], p[rows, hi]) and torch.equal(q[:, 3], p[rows, lo])
    assert bool((torch.hypot(q[:, 2, 1], q[:, 2, 2]) >= torch.hypot(q[:, 3, 1], q[:, 3, 2])).all())
    assert torch.equal(qid, torch.tensor([11, -11, 22, 22]).expand(n, 4))


def test_exact_ids_take_precedence_over_flavour_swaps():
    # e⁺ μ⁻ event for final state (11, -11, 13, -13): the μ⁻ must go to the 13 slot
    p = _momenta(1, 4, seed=6)
    ids = torch.tensor([[13, -11, -13, 11]])
    perm = final_state_permutation(p, ids, (11, -11, 13, -13))
    assert perm.tolist() == [[3, 1, 0, 2]]


def test_unmatchable_event_and_bad_arguments():
    p = _momenta(5, 2, seed=7)
    ids = torch.tensor([[11, -11], [11, -11], [13, -13], [11, 11], [11, -11]])
    with pytest.raises(ValueError, match=r"event 3 has ids \[11, 11\].*\[11, -11\]"):
        order_final_state(p, ids, (11, -11))
    with pytest.raises(ValueError, match=r"event 0 has ids \[5, -5\]"):
        order_final_state(p, torch.tensor([5, -5]), (11, -11))  # quarks do not swap with leptons
    with pytest.raises(ValueError, match=r"final_state: expected 2 PDG ids"):
        order_final_state(p, ids, (11, -11, 22))
    with pytest.raises(ValueError, match=r"pids: expected shape"):
        order_final_state(p, ids[:3], (11, -11))
    with pytest.raises(TypeError, match=r"pids: expected integer"):
        order_final_state(p, ids.double(), (11, -11))


def test_large_n_is_vectorised():
    n = 200_000
    p = _momenta(n, 6, seed=8)
    pids = torch.tensor(_DILEPTON).expand(n, 6)
    ps, ids, _ = _shuffle(p, pids, seed=9)
    q, _ = order_final_state(ps, ids, _DILEPTON)  # a python loop over events would take minutes
    assert torch.equal(q, p)


# --- LHE: a hand-written MadGraph-style file, ℓ⁺ first and ℓ⁻ first -------------------

_EVENTS = [  # (id of the lepton, x1, x2, (px, py, pz) of ℓ⁻, weight)
    (11, 0.012, 0.009, (21.5, -13.25, 40.125), 1.5),
    (13, 0.020, 0.004, (-30.0, 5.5, -12.75), 1.5),
    (11, 0.007, 0.011, (0.5, 44.0, 3.0), 1.5),
]


def _lhe_text(lplus_first: bool) -> str:
    e_beam = 6500.0
    lines = ['<LesHouchesEvents version="3.0">', "<header>",
             "<MGVersion>3.5.0</MGVersion>", "</header>", "<init>",
             f"2212 2212 {e_beam:.10e} {e_beam:.10e} 0 0 247000 247000 3 1",
             "9.1e+02 1.2e+00 1.5e+00 1", "</init>"]
    for lep, x1, x2, (px, py, pz), w in _EVENTS:
        ea, eb = x1 * e_beam, x2 * e_beam
        # massless ℓ⁻; ℓ⁺ = (pa + pb) - ℓ⁻ conserves momentum (its mass column is not read)
        em = math.sqrt(px * px + py * py + pz * pz)
        ep, pxp, pyp, pzp = ea + eb - em, -px, -py, ea - eb - pz
        lm = f"{lep} 1 3 3 0 0 {px:.12e} {py:.12e} {pz:.12e} {em:.12e} 0.0 0. 9."
        lp = f"{-lep} 1 3 3 0 0 {pxp:.12e} {pyp:.12e} {pzp:.12e} {ep:.12e} 0.0 0. 9."
        leptons = [lp, lm] if lplus_first else [lm, lp]
        lines += ["<event>", f" 5 1 {w:.6e} 9.118e+01 7.54e-03 1.30e-01",
                  f" 2 -1 0 0 501 0 0.0 0.0 {ea:.12e} {ea:.12e} 0.0 0. 1.",
                  f" -2 -1 0 0 0 501 0.0 0.0 {-eb:.12e} {eb:.12e} 0.0 0. -1.",
                  f" 23 2 1 2 0 0 0.0 0.0 {ea - eb:.12e} {ea + eb:.12e} 90.0 0. 9.",
                  *(" " + s for s in leptons), "</event>"]
    lines.append("</LesHouchesEvents>")
    return "\n".join(lines) + "\n"


def test_lhe_lplus_first_and_lminus_first_give_identical_tensors(tmp_path):
    a, b = tmp_path / "lplus.lhe", tmp_path / "lminus.lhe"
    a.write_text(_lhe_text(True))
    b.write_text(_lhe_text(False))
    raw = read_lhe(a)
    assert raw.pids_per_event[:, 0].tolist() == [-11, -13, -11]  # file order kept by default
    ea = read_lhe(a, final_state=(11, -11))
    eb = read_lhe(b, final_state=(11, -11))
    for name in ("momenta", "x1", "x2", "weights", "pids", "incoming_pids"):
        assert torch.equal(getattr(ea, name), getattr(eb, name)), name
    assert ea.pids.tolist() == [[11, -11], [13, -13], [11, -11]]
    for i, (_, x1, x2, (px, py, pz), _) in enumerate(_EVENTS):
        e = math.sqrt(px * px + py * py + pz * pz)
        assert ea.momenta[i, 0].tolist() == pytest.approx([e, px, py, pz], rel=1e-12)
        assert ea.momenta[i, 1, 1:3].tolist() == pytest.approx([-px, -py], rel=1e-12)
        assert (float(ea.x1[i]), float(ea.x2[i])) == pytest.approx((x1, x2), rel=1e-12)
    via = read_events(a, final_state=(11, -11))
    assert torch.equal(via.momenta, ea.momenta) and torch.equal(via.pids, ea.pids)
    with pytest.raises(ValueError, match=r"lplus\.lhe.*event 0 has ids \[-11, 11\]"):
        read_lhe(a, final_state=(22, 22))


# --- EventSet round trips: invsim's own files and LHE ---------------------------------

def _drell_yan_set(n=300, seed=0, lplus_first=True):
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, 3, generator=g, dtype=torch.float64)
    m = 60 + 60 * r[:, 0]
    ct, ph = 2 * r[:, 1] - 1, 2 * math.pi * r[:, 2]
    st = torch.sqrt(1 - ct**2)
    k = torch.stack([m / 2, m / 2 * st * ph.cos(), m / 2 * st * ph.sin(), m / 2 * ct], -1)
    kb = k * torch.tensor([1.0, -1, -1, -1], dtype=torch.float64)
    x = m / 13000
    lep = torch.tensor([11, 13])[torch.randint(0, 2, (n,), generator=g)]
    canonical = EventSet(process="drell-yan", momenta=torch.stack([k, kb], 1), x1=x, x2=x,
                         pids=torch.stack([lep, -lep], -1), sqrt_s=13000.0,
                         incoming_pids=torch.tensor([[2, -2]]).expand(n, 2).clone())
    swapped = EventSet(process="drell-yan", momenta=canonical.momenta.flip(1), x1=x, x2=x,
                       pids=canonical.pids.flip(1), sqrt_s=13000.0,
                       incoming_pids=canonical.incoming_pids,
                       metadata={"shower": False})
    swapped.reco = Detector()(swapped.objects(), seed=seed + 1)
    return canonical, swapped


@pytest.mark.parametrize("fmt", ["h5", "root", "lhe"])
def test_eventset_round_trip_in_canonical_order(tmp_path, fmt):
    canonical, swapped = _drell_yan_set()
    path = tmp_path / f"events.{fmt}"
    {"h5": save_hdf5, "root": write_root, "lhe": write_lhe}[fmt](swapped, path)
    back = read_events(path, final_state=(11, -11))
    assert torch.equal(back.pids, canonical.pids)
    assert torch.equal(back.momenta, canonical.momenta)  # LHE: 17 digits, float64 bit-exact
    assert torch.equal(read_events(path).momenta, swapped.momenta)  # untouched without it
    if fmt == "lhe":
        return
    # reco objects still point at the hard particle they came from
    reco = back.reco
    lep = reco.mask & (reco.types <= 1)
    hard_pid = back.pids[reco.hard_index[:, None].expand_as(reco.particle_index),
                         reco.particle_index.clamp(min=0)]
    assert bool(lep.any())
    assert torch.equal(reco.charges[lep], -torch.sign(hard_pid[lep]))
    assert torch.equal((reco.particle_index[lep] == 0), hard_pid[lep] > 0)
    assert torch.equal(reco.particle_index[~reco.mask], swapped.reco.particle_index[~reco.mask])
