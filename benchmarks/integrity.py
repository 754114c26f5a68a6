"""Cost of the integrity checks of HDF5 event files: SHA-256 per dataset on writing,
hash verification and content checks on reading.

Drell–Yan-like events (two leptons, float64) through the default CMS-like detector, so
the file holds the hard and the reco groups as ``invsim generate`` writes them. Times
(median of ``--rounds`` alternating rounds, warm file cache):

* write: :func:`forward.io.save_hdf5` with the integrity block, and with the sealing
  step switched off;
* read: :func:`forward.io.load_hdf5` of the sealed file (SHA-256 of every byte +
  content checks), of the same file unsealed (content checks only, as an older file),
  and h5py reading every dataset (no checks at all: the floor);
* hash: :func:`forward.io.hdf5.verify_hdf5` alone (one SHA-256 pass over the file).

    OMP_NUM_THREADS=1 python3 benchmarks/integrity.py --n 1000000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import h5py
import torch

import forward.io.hdf5 as hdf5
from forward.detector import Detector
from forward.eventset import EventSet
from forward.io import load_hdf5, save_hdf5

__all__ = ["main"]


def _events(n: int, seed: int) -> EventSet:
    """n lepton pairs (60 < m < 120 GeV, rapidity in (-1, 1)) with CMS-like reco."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, 4, generator=g, dtype=torch.float64)
    m = 60 + 60 * r[:, 0]
    ct, ph = 2 * r[:, 1] - 1, 2 * math.pi * r[:, 2]
    st = torch.sqrt(1 - ct**2)
    half = 0.5 * m
    k = torch.stack([half, half * st * ph.cos(), half * st * ph.sin(), half * ct], -1)
    y = 2 * r[:, 3] - 1
    from forward import kinematics as kin

    beta = torch.stack([torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64),
                        y.tanh()], -1)
    p = kin.boost(torch.stack([k, k * torch.tensor([1.0, -1, -1, -1], dtype=torch.float64)], 1),
                  beta[:, None, :])
    es = EventSet(process="drell-yan", momenta=p, x1=m / 13000 * y.exp(),
                  x2=m / 13000 * (-y).exp(), pids=torch.tensor([11, -11]), sqrt_s=13000.0,
                  incoming_pids=torch.tensor([[2, -2]]).expand(n, 2).clone(), seed=seed)
    es.reco = Detector("cms")(es.objects(), seed=seed + 1)
    return es


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _datasets(path: Path, fn) -> None:
    """``fn(array)`` for every dataset (visititems stops at a non-None return)."""
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, o: fn(o[()]) and None if isinstance(o, h5py.Dataset) else None)


def _raw_read(path: Path) -> None:
    _datasets(path, lambda a: None)




def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="events")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = parser.parse_args(argv)

    events = _events(args.n, args.seed)
    folder = Path(tempfile.mkdtemp(prefix="invsim-integrity-"))
    hashed, plain = folder / "hashed.h5", folder / "plain.h5"
    seal = hdf5._seal
    times: dict[str, list[float]] = {k: [] for k in (
        "write_hashed", "write_unhashed", "read_verified", "read_unverified", "read_raw",
        "hash_only")}
    for _ in range(args.rounds):
        times["write_hashed"].append(_time(lambda: save_hdf5(events, hashed, overwrite=True)))
        hdf5._seal = lambda path, spans, digests: None
        try:
            times["write_unhashed"].append(_time(lambda: save_hdf5(events, plain,
                                                                   overwrite=True)))
        finally:
            hdf5._seal = seal
        with h5py.File(plain, "a") as f:  # as an older invsim wrote it
            for key in ("integrity", "n_events", "n_reco"):
                f.attrs.pop(key, None)
        times["read_verified"].append(_time(lambda: load_hdf5(hashed)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            times["read_unverified"].append(_time(lambda: load_hdf5(plain)))
        times["read_raw"].append(_time(lambda: _raw_read(hashed)))
        times["hash_only"].append(_time(lambda: hdf5.verify_hdf5(hashed)))
    med = {k: statistics.median(v) for k, v in times.items()}
    size = hashed.stat().st_size
    result = {"n_events": args.n, "file_mb": size / 1e6, "seconds_median": med,
              "rounds": args.rounds, "hash_mb_per_s": size / 1e6 / med["hash_only"],
              "write_overhead": med["write_hashed"] / med["write_unhashed"] - 1,
              "read_overhead_vs_unverified": med["read_verified"] / med["read_unverified"] - 1,
              "machine": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads()}
    for p in (hashed, plain):
        p.unlink()
    os.rmdir(folder)
    print(f"{args.n} events, file {size / 1e6:.1f} MB (median of {args.rounds} rounds)")
    print(f"  write  with hashes {med['write_hashed']:.3f} s   without {med['write_unhashed']:.3f}"
          f" s   (+{100 * result['write_overhead']:.0f} %)")
    print(f"  read   verified {med['read_verified']:.3f} s   unverified (content checks) "
          f"{med['read_unverified']:.3f} s   h5py only {med['read_raw']:.3f} s")
    print(f"  SHA-256 of the whole file alone {med['hash_only']:.3f} s "
          f"({result['hash_mb_per_s']:.0f} MB/s)")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
