"""Fuzz table: bad values on the public entry points and every CLI command (issue 18).

Each case calls one entry point with one bad argument (a wrong shape, dtype, NaN/inf, a
value out of range, a wrong type, a missing or garbage file, a bad device, a size
beyond the machine) and asserts the clean error: the exception type and a message that
names the argument (for the CLI: exit status 2 for usage errors, 1 for runtime errors,
one ``Error:`` line and no traceback). The valid counterpart of every API call is
cheap, so a case that is wrongly *accepted* costs little time before the test fails;
sizes "beyond the machine" are chosen so that an unchecked call would try to allocate
more than any machine has (each case also runs under a 60 s alarm).

``test_case_count`` prints the number of cases per entry point.
"""

from __future__ import annotations

import math
import re
import signal
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from forward._validation import check_count, make_generator, resolve_device
from forward.detector import Detector, get_detector
from forward.integrand import HadronicIntegrand
from forward.io import load_hdf5, read_events, read_lhe, read_nanoaod, read_root
from forward.nis import NISConfig, VegasMap, fit, integrate
from forward.nis.toys import camel
from forward.pdf import mkPDF
from forward.processes import get_process
from forward.xsec import cross_section
from invsim.cli import main
from invsim.infer import InferenceProblem, build_priors, fit_svi, parse_prior, sample_nuts
from invsim.infer.toys import GaussianMean
from invsim.scan import scan

HUGE = 10**15          # beyond any machine's memory at >= 1 byte per item
NAN, INF = math.nan, math.inf
BAD_DEVICES = ["nosuchdevice", "cuda:99", "meta", 3, ""]
if not torch.cuda.is_available():
    BAD_DEVICES.append("cuda")
BAD_SEEDS = [(-1, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError)]
BAD_COUNTS = [(0, (ValueError,)), (-3, (ValueError,)), (2.5, (ValueError, TypeError)),
              ("100", (ValueError, TypeError)), (True, (ValueError, TypeError)),
              (None, (ValueError, TypeError))]

CASES: list = []  # (entry point, id, thunk, exception types, regex)


def case(entry: str, label: str, thunk, exc, pattern: str) -> None:
    CASES.append(pytest.param(entry, thunk, exc if isinstance(exc, tuple) else (exc,),
                              pattern, id=f"{entry}-{label}"))


@contextmanager
def _alarm(seconds: int):
    def fail(*_):
        raise TimeoutError(f"no error within {seconds} s: the bad value was accepted")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _dy(**kw):
    return get_process("drell-yan", **kw)


def _gm(n=20):
    return GaussianMean(torch.linspace(-1, 1, n, dtype=torch.float64), 1.0)


def _problem():
    lik = _gm()
    return InferenceProblem(lik, build_priors(lik.parameters, lik.parameter_names))


# -- validation helpers ----------------------------------------------------------------
for d in BAD_DEVICES:
    case("resolve_device", f"device={d!r}", lambda d=d: resolve_device(d),
         (ValueError, TypeError), "device")
for v, exc in BAD_SEEDS:
    case("make_generator", f"seed={v!r}", lambda v=v: make_generator(v), exc, "seed")
for v, exc in BAD_COUNTS:
    case("check_count", f"n={v!r}", lambda v=v: check_count("n", v), exc, "n:")
case("check_count", "n=HUGE>max", lambda: check_count("n", HUGE, 1, 10**9), ValueError, "n:")

# -- get_process -----------------------------------------------------------------------
for name, exc in (("nosuch", ValueError), ("", ValueError), (3, (TypeError, ValueError)),
                  (None, (TypeError, ValueError))):
    case("get_process", f"name={name!r}", lambda n=name: get_process(n), exc,
         r"process|name|nosuch")
for k, v in (("sqrt_s", -1.0), ("sqrt_s", NAN), ("sqrt_s", INF), ("sqrt_s", "abc"),
             ("mll_min", -5.0), ("mll_min", 200.0), ("mll_max", NAN), ("leptons", "tautau"),
             ("mode", "nosuch"), ("nosuch_setting", 1)):
    case("get_process", f"{k}={v!r}", lambda k=k, v=v: _dy(**{k: v}),
         (ValueError, TypeError), k)

# -- cross_section ---------------------------------------------------------------------
_P = _dy()
for v, exc in BAD_COUNTS:
    case("cross_section", f"n={v!r}", lambda v=v: cross_section(_P, v, seed=0), exc, "n")
    case("cross_section", f"batch_size={v!r}",
         lambda v=v: cross_section(_P, 1000, batch_size=v, seed=0), exc, "batch_size")
case("cross_section", "n=HUGE (time)", lambda: cross_section(_P, HUGE, seed=0), ValueError,
     r"n: .* hours")
case("cross_section", "batch_size=HUGE (memory)",
     lambda: cross_section(_P, HUGE, batch_size=HUGE, seed=0), ValueError,
     r"batch_size: .* GiB")
case("cross_section", "n=99 vegas", lambda: cross_section(_P, 99, method="vegas", seed=0),
     ValueError, "n")
case("cross_section", "method='nosuch'", lambda: cross_section(_P, 100, method="x", seed=0),
     ValueError, "method")
case("cross_section", "max_seconds=-1",
     lambda: cross_section(_P, 100, seed=0, max_seconds=-1), ValueError, "max_seconds")
for v, exc in BAD_SEEDS:
    case("cross_section", f"seed={v!r}", lambda v=v: cross_section(_P, 100, seed=v), exc,
         "seed")
case("cross_section", "seed+generator",
     lambda: cross_section(_P, 100, seed=1, generator=torch.Generator()), ValueError, "seed")
case("cross_section", "generator=3", lambda: cross_section(_P, 100, generator=3), TypeError,
     "generator")
for d in BAD_DEVICES:
    case("cross_section", f"device={d!r}", lambda d=d: cross_section(_P, 100, device=d),
         (ValueError, TypeError), "device")
for ch in (99, -1):
    case("cross_section", f"channel={ch}", lambda ch=ch: cross_section(_P, 100, channel=ch),
         ValueError, "channel")
for params in ({"nosuch": 1.0}, {"mzp": NAN}, {"mzp": -5.0}, {"mzp": "x"}):
    case("cross_section", f"params={params}",
         lambda p=params: cross_section(_P, 100, params=p, seed=0), (ValueError, TypeError),
         r"nosuch|mzp")
case("cross_section", "pdf='NOSUCHPDF'", lambda: cross_section(_P, 100, pdf="NOSUCHPDF"),
     FileNotFoundError, "NOSUCHPDF")
case("cross_section", "process=None", lambda: cross_section(None, 100), (TypeError,
     ValueError, AttributeError), r"process|NoneType")

# -- HadronicIntegrand -----------------------------------------------------------------
for d in BAD_DEVICES:
    case("HadronicIntegrand", f"device={d!r}", lambda d=d: HadronicIntegrand(_P, device=d),
         (ValueError, TypeError), "device")
case("HadronicIntegrand", "channel=99", lambda: HadronicIntegrand(_P, channel=99), ValueError,
     "channel")
# an int is an LHAPDF id (issue 19); 3 is none: not found, naming the argument
case("HadronicIntegrand", "pdf=3", lambda: HadronicIntegrand(_P, pdf=3), FileNotFoundError,
     "lhapdf_id")
case("HadronicIntegrand", "pdf=3.5", lambda: HadronicIntegrand(_P, pdf=3.5),
     (TypeError, ValueError), "pdf")
case("HadronicIntegrand", "pdf='NOSUCHPDF'", lambda: HadronicIntegrand(_P, pdf="NOSUCHPDF"),
     FileNotFoundError, "NOSUCHPDF")

# -- generate_events -------------------------------------------------------------------
def _gen(**kw):
    from forward.generate import generate_events

    args = {"process": "drell-yan", "n_events": 10, "train_calls": 1000} | kw
    return generate_events(args.pop("process"), args.pop("n_events"), **args)


for v, exc in BAD_COUNTS:
    case("generate_events", f"n_events={v!r}", lambda v=v: _gen(n_events=v), exc, "n_events")
case("generate_events", "n_events=HUGE", lambda: _gen(n_events=HUGE), ValueError,
     r"n_events: .* GiB")
case("generate_events", "train_calls=HUGE", lambda: _gen(train_calls=HUGE), ValueError,
     r"train_calls.* GiB")
case("generate_events", "train_calls=10", lambda: _gen(train_calls=10), ValueError,
     "train_calls")
for v in (-1, 1.5, "x"):
    case("generate_events", f"seed={v!r}", lambda v=v: _gen(seed=v), ValueError, "seed")
for v in (1.0, -0.1, NAN):
    case("generate_events", f"overweight={v!r}", lambda v=v: _gen(overweight=v), ValueError,
         "overweight")
for d in BAD_DEVICES:
    case("generate_events", f"device={d!r}", lambda d=d: _gen(device=d),
         (ValueError, TypeError), "device")
case("generate_events", "process='nosuch'", lambda: _gen(process="nosuch"), ValueError,
     "nosuch")
case("generate_events", "detector='nosuch'", lambda: _gen(detector="nosuch"),
     (ValueError, FileNotFoundError), "nosuch")
case("generate_events", "settings bad", lambda: _gen(settings={"sqrt_s": -1}), ValueError,
     "sqrt_s")

# -- mkPDF -----------------------------------------------------------------------------
for name, exc in (("NOSUCHPDF", FileNotFoundError), ("", (ValueError, TypeError)),
                  (3, FileNotFoundError), (3.5, TypeError), (True, TypeError),
                  (None, TypeError)):
    case("mkPDF", f"name={name!r}", lambda n=name: mkPDF(n), exc, r"name|NOSUCHPDF|set")
for m, exc in ((-1, ValueError), (1.5, (TypeError, ValueError)), ("x", (TypeError, ValueError)),
               (10**6, (ValueError, FileNotFoundError))):
    case("mkPDF", f"member={m!r}", lambda m=m: mkPDF("NNPDF31_lo_as_0118", m), exc, "member")
for d in BAD_DEVICES:
    case("mkPDF", f"device={d!r}", lambda d=d: mkPDF("NNPDF31_lo_as_0118", device=d),
         (ValueError, TypeError), "device")
case("mkPDF", "backend='nosuch'", lambda: mkPDF("NNPDF31_lo_as_0118", backend="x"),
     ValueError, "backend")

# -- detectors -------------------------------------------------------------------------
for spec, exc in (("nosuch", (ValueError, FileNotFoundError)),
                  ("missing_card.json", (ValueError, FileNotFoundError)), (3, TypeError),
                  ("gaussian:sigma_pt=-1", ValueError), ("gaussian:nosuch=1", ValueError),
                  ("gaussian:sigma_pt=abc", ValueError)):
    case("get_detector", f"spec={spec!r}", lambda s=spec: get_detector(s), exc,
         r"detector|card|spec|sigma_pt|nosuch|missing")
    case("Detector", f"card={spec!r}", lambda s=spec: Detector(s), (ValueError, TypeError,
         FileNotFoundError), r"detector|card|spec|sigma_pt|nosuch|missing|gaussian")

# -- NIS -------------------------------------------------------------------------------
for v, exc in ((0, ValueError), (1, ValueError), (2.5, TypeError), ("2", TypeError)):
    case("fit", f"dims={v!r}", lambda v=v: fit(camel(2), v), exc, "dims")
case("fit", "config=dict", lambda: fit(camel(2), 2, {"calls": 10}), TypeError, "config")
case("fit", "config.calls=HUGE batch", lambda: fit(camel(2), 2, NISConfig(batch_size=0)),
     ValueError, "batch_size")
for v, exc in ((0, ValueError), (1.5, TypeError), (-2, ValueError)):
    case("VegasMap", f"dims={v!r}", lambda v=v: VegasMap(v), exc, "dims")
    case("VegasMap", f"bins={v!r}", lambda v=v: VegasMap(2, bins=v), exc, "bins")
case("VegasMap", "smoothing=-1", lambda: VegasMap(2, smoothing=-1.0), ValueError, "smoothing")
case("VegasMap", "sample n=0", lambda: VegasMap(2).sample(0), ValueError, "n")
case("VegasMap", "forward u shape", lambda: VegasMap(2)(torch.rand(5, 3)), ValueError, "u")
case("VegasMap", "forward u int", lambda: VegasMap(2)(torch.ones(5, 2, dtype=torch.long)),
     TypeError, "u")
case("VegasMap", "adapt batch_size=0",
     lambda: VegasMap(2).adapt(camel(2), 1, 100, batch_size=0), ValueError, "batch_size")
case("VegasMap", "adapt nan integrand",
     lambda: VegasMap(2).adapt(lambda x: x[:, 0] * NAN, 1, 100), ValueError, "integrand")
case("VegasMap", "adapt wrong shape",
     lambda: VegasMap(2).adapt(lambda x: x, 1, 100), ValueError, "integrand")
for v, exc in ((0, ValueError), (2.5, TypeError)):
    case("integrate", f"n={v!r}", lambda v=v: integrate(camel(2), VegasMap(2), v), exc, "n")

# -- priors ----------------------------------------------------------------------------
for spec in ("mu", "mu=", "mu=uniform", "mu=uniform:1", "mu=uniform:2,1", "mu=normal:0,-1",
             "mu=nosuch:0,1", "mu=uniform:a,b", "=uniform:0,1", "mu=uniform:nan,1"):
    case("parse_prior", f"spec={spec!r}", lambda s=spec: parse_prior(s), ValueError,
         r"prior|spec|mu|family|scale|low|high")
for d in BAD_DEVICES[:3]:
    case("parse_prior", f"device={d!r}", lambda d=d: parse_prior("mu=uniform:0,1", device=d),
         (ValueError, TypeError), "device")

# -- scan ------------------------------------------------------------------------------
def _grid(*v):
    return {"mu": torch.tensor(v, dtype=torch.float64)}


for label, grid, exc, pat in (
        ("2 points", _grid(0.0, 1.0), ValueError, "grid"),
        ("decreasing", _grid(1.0, 0.5, 0.0), ValueError, "grid"),
        ("NaN", _grid(0.0, NAN, 1.0), ValueError, "grid"),
        ("inf", _grid(0.0, 1.0, INF), ValueError, "grid"),
        ("outside range", _grid(0.0, 5.0, 50.0), ValueError, "grid"),
        ("unknown name", {"nu": torch.linspace(0, 1, 3)}, ValueError, "nu"),
        ("list", {"mu": "abc"}, (TypeError, ValueError), "grid"),
        ("empty", {}, ValueError, "grid")):
    case("scan", f"grid {label}", lambda g=grid: scan(_gm(), g), exc, pat)
_G3 = _grid(-0.5, 0.0, 0.5)
for v, exc in ((0, ValueError), (1.5, ValueError), ("4", ValueError)):
    case("scan", f"batch_size={v!r}", lambda v=v: scan(_gm(), _G3, batch_size=v), exc,
         "batch_size")
for d in BAD_DEVICES:
    case("scan", f"device={d!r}", lambda d=d: scan(_gm(), _G3, device=d),
         (ValueError, TypeError), "device")
case("scan", "on_flagged='x'", lambda: scan(_gm(), _G3, on_flagged="x"), ValueError,
     "on_flagged")
for v in (-1.0, NAN, 0.0):
    case("scan", f"luminosity={v}", lambda v=v: scan(_gm(), _G3, luminosity=v), ValueError,
         "luminosity")
case("scan", "likelihood=None", lambda: scan(None, _G3), TypeError, "likelihood")
case("scan", "profile unknown", lambda: scan(_gm(), _G3, profile=["nu"]), ValueError,
     "profile")
case("scan", "fixed unknown", lambda: scan(_gm(), _G3, fixed={"nu": 1.0}), ValueError,
     "fixed")

# -- sample_nuts / fit_svi -------------------------------------------------------------
for k, v in (("num_samples", 0), ("num_samples", HUGE), ("num_samples", 1.5),
             ("warmup", -1), ("warmup", HUGE), ("chains", 0), ("chains", 10**6),
             ("seed", -1), ("target_accept", 1.5), ("target_accept", 0.0)):
    case("sample_nuts", f"{k}={v!r}", lambda k=k, v=v: sample_nuts(_problem(), **{k: v}),
         ValueError, k)
case("sample_nuts", "problem=None", lambda: sample_nuts(None), TypeError, "problem")
for k, v in (("steps", 0), ("steps", 10**23), ("steps", 2.5), ("num_samples", 0),
             ("num_samples", HUGE), ("seed", -1), ("lr", -1.0), ("lr", NAN),
             ("particles", 0)):
    case("fit_svi", f"{k}={v!r}", lambda k=k, v=v: fit_svi(_problem(), **{k: v}),
         ValueError, k)
case("fit_svi", "problem=None", lambda: fit_svi(None), TypeError, "problem")
for k, v in (("luminosity", -1.0), ("luminosity", NAN), ("on_flagged", "x")):
    case("InferenceProblem", f"{k}={v!r}",
         lambda k=k, v=v: InferenceProblem(_gm(), build_priors(_gm().parameters, ["mu"]),
                                           **{k: v}), ValueError, k)
case("InferenceProblem", "priors=None", lambda: InferenceProblem(_gm(), None), TypeError,
     "priors")


# -- run_demo --------------------------------------------------------------------------
def _demo(device):
    from invsim.demo import run_demo

    return run_demo(Path("/nonexistent-dir/invsim-fuzz-report"), quick=True, device=device)


for d in BAD_DEVICES:
    case("run_demo", f"device={d!r}", lambda d=d: _demo(d), (ValueError, TypeError), "device")


# -- MEMLikelihood (the all-Gaussian toy of test_mem) ----------------------------------
def _mem(**kw):
    from test_mem import toy_model, toy_reco

    from invsim.mem import MEMLikelihood

    args = {"x_reco": toy_reco(4), "n_samples": 50, "n_fiducial": 200} | kw
    return MEMLikelihood(args.pop("model", None) or toy_model(), args.pop("x_reco"), **args)


_X = torch.full((4, 2), 0.5, dtype=torch.float64)
for label, x, exc in (("NaN", _X.clone().index_fill_(0, torch.tensor([1]), NAN), ValueError),
                      ("inf", _X.clone().index_fill_(0, torch.tensor([2]), INF), ValueError),
                      ("int dtype", torch.ones(4, 2, dtype=torch.long), TypeError),
                      ("string", "abc", TypeError), ("None", None, TypeError),
                      ("1-D", torch.ones(4, dtype=torch.float64), ValueError),
                      ("no events", torch.ones(0, 2, dtype=torch.float64), ValueError)):
    case("MEMLikelihood", f"x_reco {label}", lambda x=x: _mem(x_reco=x), exc, "x_reco")
for k, v, exc in (("n_samples", 10, ValueError), ("n_samples", 1.5, ValueError),
                  ("n_fiducial", 1, ValueError), ("chunk_size", 0, ValueError),
                  ("n_samples", HUGE, ValueError), ("n_fiducial", HUGE, ValueError),
                  ("defensive", 1.0, ValueError), ("defensive", -0.1, ValueError),
                  ("seed", -1, ValueError), ("seed", 1.5, TypeError),
                  ("on_flagged", "x", ValueError), ("parameter_names", "mu", TypeError),
                  ("parameter_names", ["nosuch"], ValueError),
                  ("fixed", {"nosuch": 1.0}, ValueError),
                  ("fiducial_acceptance", "exact", ValueError),
                  ("fiducial_acceptance", "detector", ValueError),
                  ("fiducial_smearings", 0, ValueError),
                  ("fiducial_smearings", 2.5, TypeError),
                  ("event_acceptance", "exact", ValueError),
                  ("event_acceptance", "detector", ValueError),
                  ("event_smearings", 0, ValueError),
                  ("event_smearings", 2.5, TypeError)):
    case("MEMLikelihood", f"{k}={v!r}", lambda k=k, v=v: _mem(**{k: v}), exc,
         k if k != "fixed" else "nosuch")
for d in BAD_DEVICES:
    case("MEMLikelihood", f"device={d!r}", lambda d=d: _mem(device=d), (ValueError, TypeError),
         "device")
case("MEMLikelihood", "model=None", lambda: _mem(model=3), TypeError, "model")


def _mem_eval(theta):
    return _mem().evaluate(theta)


for label, theta, exc, pat in (
        ("missing name", {}, ValueError, "mu"),
        ("unknown name", {"mu": 0.5, "nu": 1.0}, ValueError, "nu"),
        ("NaN", {"mu": NAN}, ValueError, "mu"),
        ("out of range", {"mu": 5.0}, ValueError, "mu"),
        ("string", {"mu": "x"}, (TypeError, ValueError), "mu"),
        ("2-D", {"mu": torch.ones(2, 2, dtype=torch.float64)}, ValueError, "mu")):
    case("MEMLikelihood.evaluate", f"theta {label}", lambda t=theta: _mem_eval(t), exc, pat)


# == entry points added for issue 18's "every public entry point" ======================
F64 = torch.float64
_ANY = (ValueError, TypeError)


def _events(n=6, **kw):
    """A tiny valid Drell-Yan EventSet (two back-to-back leptons at rest)."""
    from forward.eventset import EventSet

    e = torch.tensor([[100.0, 0, 30, 40], [100.0, 0, -30, -40]], dtype=F64)
    p = e.expand(n, 2, 4).clone()
    args = {"process": "drell-yan", "momenta": p, "x1": torch.full((n,), 0.01, dtype=F64),
            "x2": torch.full((n,), 0.02, dtype=F64), "pids": torch.tensor([11, -11]),
            "sqrt_s": 13000.0, "incoming_pids": torch.tensor([[2, -2]]).expand(n, 2).clone()}
    return EventSet(**(args | kw))


# -- writers: save_hdf5, write_lhe, write_root -----------------------------------------
def _writer(name):
    from forward import io

    return getattr(io, name)


for w in ("save_hdf5", "write_lhe", "write_root"):
    case(w, "events=None", lambda w=w: _writer(w)(None, "/tmp/x.out"), TypeError, "events")
    case(w, "events=dict", lambda w=w: _writer(w)({"momenta": 1}, "/tmp/x.out"), TypeError,
         "events")
    case(w, "path in missing dir",
         lambda w=w: _writer(w)(_events(), "/nonexistent-dir/sub/out.file"),
         (FileNotFoundError, ValueError), "nonexistent-dir")
    case(w, "path=3", lambda w=w: _writer(w)(_events(), 3), TypeError, "path")
    case(w, "overwrite='yes'", lambda w=w: _writer(w)(_events(), "/tmp/x.out",
                                                       overwrite="yes"), TypeError, "overwrite")
case("write_lhe", "scales shape", lambda: _writer("write_lhe")(
    _events(), _tmpfile("x.lhe", None), scales=torch.ones(3, dtype=F64)), ValueError,
    "scales")
case("write_lhe", "scales NaN", lambda: _writer("write_lhe")(
    _events(), _tmpfile("x.lhe", None), scales=torch.full((6,), NAN, dtype=F64)), ValueError,
    "scales")
for k, v in (("beam_pid", 1.5), ("alpha_s", NAN), ("alpha_qed", -1.0), ("alpha_s", "x")):
    case("write_lhe", f"{k}={v!r}", lambda k=k, v=v: _writer("write_lhe")(
        _events(), _tmpfile("x.lhe", None), **{k: v}), _ANY, k)
case("write_lhe", "no incoming_pids", lambda: _writer("write_lhe")(
    _events(incoming_pids=None), _tmpfile("x.lhe", None)), ValueError, "incoming_pids")

# -- EventSet --------------------------------------------------------------------------
for label, kw, exc, pat in (
        ("momenta NaN", {"momenta": torch.full((6, 2, 4), NAN, dtype=F64)}, ValueError,
         "momenta"),
        ("momenta 2-D", {"momenta": torch.ones(6, 4, dtype=F64)}, ValueError, "momenta"),
        ("momenta int", {"momenta": torch.ones(6, 2, 4, dtype=torch.long)}, TypeError,
         "momenta"),
        ("x1 NaN", {"x1": torch.full((6,), NAN, dtype=F64)}, ValueError, "x1"),
        ("x1=5", {"x1": torch.full((6,), 5.0, dtype=F64)}, ValueError, "x1"),
        ("x2 shape", {"x2": torch.full((5,), 0.1, dtype=F64)}, ValueError, "x2"),
        ("pids float", {"pids": torch.tensor([11.5, -11.0])}, _ANY, "pids"),
        ("pids length", {"pids": torch.tensor([11, -11, 22])}, ValueError, "pids"),
        ("weights inf", {"weights": torch.full((6,), INF, dtype=F64)}, ValueError, "weights"),
        ("sqrt_s=-1", {"sqrt_s": -1.0}, ValueError, "sqrt_s"),
        ("sqrt_s NaN", {"sqrt_s": NAN}, ValueError, "sqrt_s"),
        ("process=3", {"process": 3}, TypeError, "process"),
        ("incoming float", {"incoming_pids": torch.ones(6, 2)}, ValueError, "incoming_pids"),
        ("cross_section NaN", {"cross_section": NAN}, ValueError, "cross_section"),
        ("seed=1.5", {"seed": 1.5}, TypeError, "seed")):
    case("EventSet", label, lambda kw=kw: _events(**kw), exc, pat)

# -- order_final_state -----------------------------------------------------------------
def _order(**kw):
    from forward.events import order_final_state

    args = {"momenta": torch.ones(3, 2, 4, dtype=F64), "pids": [11, -11],
            "final_state": [-11, 11]} | kw
    return order_final_state(args["momenta"], args["pids"], args["final_state"])


for label, kw, pat in (
        ("momenta 2-D", {"momenta": torch.ones(3, 4, dtype=F64)}, "momenta"),
        ("momenta last dim 3", {"momenta": torch.ones(3, 2, 3, dtype=F64)}, "momenta"),
        ("pids length", {"pids": [11, -11, 22]}, "pids"),
        ("pids float", {"pids": torch.tensor([11.5, -11.0])}, "pids"),
        ("final_state not a permutation", {"final_state": [22, 21]}, "final_state"),
        ("final_state length", {"final_state": [11]}, "final_state"),
        ("final_state string", {"final_state": "ab"}, "final_state")):
    case("order_final_state", label, lambda kw=kw: _order(**kw), _ANY, pat)

# -- variations ------------------------------------------------------------------------
def _variations(**kw):
    from forward.variations import cross_section_variations, scale_variations

    args = {"variations": scale_variations(), "n": 1000} | kw
    return cross_section_variations(_P, args.pop("variations"), args.pop("n"), **args)


for label, kw, exc, pat in (
        ("variations empty", {"variations": []}, ValueError, "variations"),
        ("variations=[3]", {"variations": [3]}, TypeError, "variations"),
        ("variations=None", {"variations": None}, _ANY, "variations"),
        ("n=0", {"n": 0}, ValueError, "n"), ("n=2.5", {"n": 2.5}, _ANY, "n"),
        ("n=HUGE", {"n": HUGE}, ValueError, "n"),
        ("method nosuch", {"method": "nosuch"}, ValueError, "method"),
        ("seed=-1", {"seed": -1}, ValueError, "seed"),
        ("batch_size=0", {"batch_size": 0}, ValueError, "batch_size"),
        ("device nosuch", {"device": "nosuchdevice"}, ValueError, "device"),
        ("params NaN", {"params": {"mzp": NAN}}, ValueError, "mzp")):
    case("cross_section_variations", label, lambda kw=kw: _variations(**kw), exc, pat)
for label, pts, exc in (("empty", [], ValueError), ("negative", [(1.0, -1.0)], ValueError),
                        ("NaN", [(NAN, 1.0)], ValueError), ("zero", [(0.0, 1.0)], ValueError),
                        ("triple", [(1.0, 1.0, 1.0)], _ANY), ("string", "ab", _ANY),
                        ("inf", [(INF, 1.0)], ValueError)):
    case("scale_variations", f"points {label}",
         lambda p=pts: __import__("forward.variations").variations.scale_variations(p), exc,
         "points")
for label, pdfs, exc in (("[3.5]", [3.5], TypeError), ("[None]", [None], TypeError),
                         ("None", None, TypeError), ("string", "NNPDF", TypeError)):
    case("pdf_variations", f"pdfs {label}",
         lambda p=pdfs: __import__("forward.variations").variations.pdf_variations(p), exc,
         "pdfs")

# -- mkPDFs ----------------------------------------------------------------------------
def _mkpdfs(*a, **kw):
    from forward.pdf import mkPDFs

    return mkPDFs(*a, **kw)


for name, exc in (("NOSUCHPDF", FileNotFoundError), ("", _ANY), (3.5, TypeError),
                  (None, TypeError)):
    case("mkPDFs", f"name={name!r}", lambda n=name: _mkpdfs(n), exc, r"name|NOSUCHPDF|set")
for d in BAD_DEVICES[:3]:
    case("mkPDFs", f"device={d!r}", lambda d=d: _mkpdfs("NNPDF31_lo_as_0118", device=d),
         _ANY, "device")
case("mkPDFs", "backend nosuch", lambda: _mkpdfs("NNPDF31_lo_as_0118", backend="x"),
     ValueError, "backend")
case("mkPDFs", "alphas_mz NaN", lambda: _mkpdfs("NNPDF31_lo_as_0118", alphas_mz=NAN),
     ValueError, "alphas_mz")

# -- generate_hard_events, generate_events_chunked -------------------------------------
def _hard(**kw):
    from forward.generate import generate_hard_events

    args = {"integrand": HadronicIntegrand(_P), "n_events": 10,
            "generator": torch.Generator().manual_seed(0), "train_calls": 1000} | kw
    return generate_hard_events(args.pop("integrand"), args.pop("n_events"), **args)


for label, kw, exc, pat in (
        ("integrand=None", {"integrand": None}, TypeError, "integrand"),
        ("n_events=0", {"n_events": 0}, ValueError, "n_events"),
        ("n_events=1.5", {"n_events": 1.5}, _ANY, "n_events"),
        ("n_events=HUGE", {"n_events": HUGE}, ValueError, "n_events"),
        ("generator=3", {"generator": 3}, TypeError, "generator"),
        ("generator=None", {"generator": None}, TypeError, "generator"),
        ("train_calls=10", {"train_calls": 10}, ValueError, "train_calls"),
        ("overweight=1.5", {"overweight": 1.5}, ValueError, "overweight"),
        ("overweight NaN", {"overweight": NAN}, ValueError, "overweight")):
    case("generate_hard_events", label, lambda kw=kw: _hard(**kw), exc, pat)


def _chunked(**kw):
    from forward.chunked import generate_events_chunked

    args = {"process": "drell-yan", "n_events": 10, "train_calls": 1000} | kw
    return generate_events_chunked(args.pop("process"), args.pop("n_events"), **args)


for label, kw, exc, pat in (
        ("n_events=0", {"n_events": 0}, ValueError, "n_events"),
        ("n_events=HUGE", {"n_events": HUGE}, ValueError, "n_events"),
        ("chunk_size=0", {"chunk_size": 0}, ValueError, "chunk_size"),
        ("chunk_size=1.5", {"chunk_size": 1.5}, _ANY, "chunk_size"),
        ("seed=-1", {"seed": -1}, ValueError, "seed"),
        ("device nosuch", {"device": "nosuchdevice"}, ValueError, "device"),
        ("process nosuch", {"process": "nosuch"}, ValueError, "nosuch"),
        ("overweight=1.5", {"overweight": 1.5}, ValueError, "overweight"),
        ("chunk_dir missing", {"chunk_dir": "/nonexistent-dir/chunks"},
         (ValueError, FileNotFoundError), "chunk_dir|nonexistent")):
    case("generate_events_chunked", label, lambda kw=kw: _chunked(**kw), exc, pat)

# -- GaussianLeptonDetector and closed forms -------------------------------------------
def _gdet(**kw):
    from forward.detector import GaussianLeptonDetector

    return GaussianLeptonDetector(**kw)


for k, v in (("sigma_pt", -0.1), ("sigma_pt", NAN), ("sigma_eta", INF), ("sigma_phi", 0.0),
             ("pt_min", -1.0), ("pt_min", NAN), ("eta_max", 0.0), ("eta_max", -2.5),
             ("sigma_pt", "x")):
    case("GaussianLeptonDetector", f"{k}={v!r}", lambda k=k, v=v: _gdet(**{k: v}), _ANY, k)
for k, v in (("n_leptons", 0), ("n_leptons", 1.5), ("pt_min", NAN), ("pt_min", -1.0),
             ("eta_max", 0.0), ("flavours", "ab"), ("flavours", [([13, -13], -1.0)])):
    if k != "flavours":  # the Gaussian detector ignores the flavours
        case("GaussianLeptonDetector.closed_form", f"{k}={v!r}",
             lambda k=k, v=v: _gdet().closed_form(**{k: v}), _ANY, k)
    case("Detector.closed_form", f"{k}={v!r}",
         lambda k=k, v=v: Detector("cms").closed_form(**{k: v}), _ANY,
         "flavours|shares" if k == "flavours" else k)

# -- register_process ------------------------------------------------------------------
def _register(*a):
    from forward.processes import register_process

    return register_process(*a)


for label, args, exc, pat in (("name=''", ("", type(_P)), ValueError, "name"),
                              ("name=3", (3, type(_P)), TypeError, "name"),
                              ("cls=int", ("fuzz-int", int), TypeError, "subclass"),
                              ("cls=instance", ("fuzz-inst", _P), TypeError, "subclass"),
                              ("builtin name", ("drell-yan", type("FuzzDY", (type(_P),), {})),
                               ValueError, "drell-yan")):
    case("register_process", label, lambda a=args: _register(*a), exc, pat)

# -- NIS: NISConfig, MultiChannelConfig, fit_multichannel, unweight, reweight ----------
for k, v in (("calls", 0), ("calls", 1.5), ("vegas_fraction", 1.5), ("vegas_fraction", NAN),
             ("loss", "nosuch"), ("final_loss", "nosuch"), ("lr", -1.0), ("lr", NAN),
             ("hidden", ()), ("hidden", (0,)), ("batch_size", 0), ("flow_bins", 0),
             ("density", "nosuch"), ("flow_dtype", torch.int64), ("lam", -1.0)):
    case("NISConfig", f"{k}={v!r}", lambda k=k, v=v: NISConfig(**{k: v}), _ANY, k)


def _mc(**kw):
    from forward.nis import MultiChannelConfig

    return MultiChannelConfig(**kw)


for k, v in (("calls", 0), ("rounds", 0), ("rounds", 1.5), ("min_share", 1.5),
             ("min_share", -0.1), ("lr", NAN), ("vegas_bins", 0), ("weight_batch", 0),
             ("flow_fraction", 2.0), ("flow_config", {"calls": 1})):
    case("MultiChannelConfig", f"{k}={v!r}", lambda k=k, v=v: _mc(**{k: v}), _ANY, k)


def _fit_mc(maps=None, config=None, **kw):
    from forward.nis import MultiChannelConfig, fit_multichannel
    from forward.nis.toys import camel as _camel

    return fit_multichannel(_camel(2), [VegasMap(2)] if maps is None else maps,
                            config or MultiChannelConfig(calls=2000, rounds=2), **kw)


for label, kw, exc, pat in (("maps empty", {"maps": []}, ValueError, "maps"),
                            ("maps=[3]", {"maps": [3]}, TypeError, "maps"),
                            ("config=dict", {"config": {"calls": 10}}, TypeError, "config"),
                            ("generator=3", {"generator": 3}, TypeError, "generator"),
                            ("device nosuch", {"device": "nosuchdevice"}, ValueError,
                             "device")):
    case("fit_multichannel", label, lambda kw=kw: _fit_mc(**kw), exc, pat)
case("fit_multichannel", "f=None", lambda: __import__("forward.nis").nis.fit_multichannel(
    None, [VegasMap(2)]), TypeError, "f")


def _unweight(w, **kw):
    from forward.nis import unweight

    return unweight(w, **kw)


_W = torch.rand(20, dtype=F64) + 0.1
for label, w, kw, exc, pat in (
        ("weights NaN", _W.clone().index_fill_(0, torch.tensor([3]), NAN), {}, ValueError,
         "weights"),
        ("weights 2-D", _W.view(4, 5), {}, ValueError, "weights"),
        ("weights list", [1.0, 2.0], {}, TypeError, "weights"),
        ("weights empty", torch.ones(0, dtype=F64), {}, ValueError, "weights"),
        ("overweight=1.5", _W, {"overweight": 1.5}, ValueError, "overweight"),
        ("overweight NaN", _W, {"overweight": NAN}, ValueError, "overweight"),
        ("generator=3", _W, {"generator": 3}, TypeError, "generator")):
    case("unweight", label, lambda w=w, kw=kw: _unweight(w, **kw), exc, pat)

# -- amplitudes ------------------------------------------------------------------------
def _amp(name, *a, **kw):
    from forward import amplitudes

    return getattr(amplitudes, name)(*a, **kw)


_K5 = torch.ones(2, 5, 4, dtype=F64)
for label, a, kw, exc, pat in (
        ("momenta 2-D", (torch.ones(5, 4, dtype=F64),), {}, ValueError, "momenta"),
        ("momenta 3 gluons", (torch.ones(2, 3, 4, dtype=F64),), {}, ValueError, "momenta"),
        ("momenta last dim 3", (torch.ones(2, 5, 3, dtype=F64),), {}, ValueError, "momenta"),
        ("momenta NaN", (torch.full((2, 5, 4), NAN, dtype=F64),), {}, ValueError, "momenta"),
        ("momenta int", (torch.ones(2, 5, 4, dtype=torch.long),), {}, TypeError, "momenta"),
        ("colour nosuch", (_K5,), {"colour": "nosuch"}, ValueError, "colour"),
        ("basis nosuch", (_K5,), {"basis": "nosuch"}, ValueError, "basis"),
        ("colour=3", (_K5,), {"colour": 3}, ValueError, "colour")):
    case("gluon_me2", label, lambda a=a, kw=kw: _amp("gluon_me2", *a, **kw), exc, pat)
for label, a, exc, pat in (
        ("momenta 1-D", (torch.ones(4, dtype=F64), (0, 1)), ValueError, "momenta"),
        ("negative same", (_K5, (0, 0)), ValueError, "negative"),
        ("negative out of range", (_K5, (0, 9)), ValueError, "negative"),
        ("negative string", (_K5, "ab"), _ANY, "negative")):
    case("parke_taylor", label, lambda a=a: _amp("parke_taylor", *a), exc, pat)
_K4 = torch.ones(2, 4, 4, dtype=F64)
for label, kw, exc, pat in (
        ("momenta shape", {"momenta": torch.ones(2, 3, 4, dtype=F64)}, ValueError, "momenta"),
        ("quark_pid=11", {"quark_pid": 11}, ValueError, "quark_pid"),
        ("lepton_pid=2", {"lepton_pid": 2}, ValueError, "lepton_pid"),
        ("z_mass=-1", {"z_mass": -1.0}, ValueError, "z_mass"),
        ("z_width NaN", {"z_width": NAN}, ValueError, "z_width")):
    case("quark_lepton_neutral_current_me2", label, lambda kw=kw: _amp(
        "quark_lepton_neutral_current_me2", **({"momenta": _K4, "quark_pid": 2,
                                                "lepton_pid": 11, "alpha": 1 / 128,
                                                "z_mass": 91.19, "z_width": 2.5} | kw)),
         exc, pat)
case("quark_vector_bosons_me2", "momenta one line", lambda: _amp(
    "quark_vector_bosons_me2", torch.ones(2, 2, 4, dtype=F64)), ValueError, "momenta")
case("quark_vector_bosons_me2", "momenta NaN", lambda: _amp(
    "quark_vector_bosons_me2", torch.full((2, 3, 4), NAN, dtype=F64)), ValueError, "momenta")

# -- invsim.data -----------------------------------------------------------------------
def _obs(**kw):
    from invsim.observables import RecoObservables

    return RecoObservables(**kw)


_TMP = tempfile.TemporaryDirectory(prefix="invsim-fuzz-")  # removed at exit


def _tmpfile(name: str, content: bytes | None = b"not an event file\x00\xff" * 8) -> Path:
    """``name`` in a fresh folder, with ``content`` (None: not created)."""
    p = Path(tempfile.mkdtemp(prefix="invsim-fuzz-", dir=_TMP.name)) / name
    if content is not None:
        p.write_bytes(content)
    return p


def _data(name, *a, **kw):
    import invsim.data

    return getattr(invsim.data, name)(*a, **kw)


case("load_observed", "path missing", lambda: _data(
    "load_observed", "/nonexistent-dir/ev.h5", _obs()), FileNotFoundError, "ev.h5")
case("load_observed", "path garbage", lambda: _data(
    "load_observed", _tmpfile("garbage.h5"), _obs()), (ValueError, OSError), "garbage.h5")
case("load_observed", "path=3", lambda: _data("load_observed", 3, _obs()), TypeError, "path")
case("load_observed", "observables=None", lambda: _data(
    "load_observed", _tmpfile("garbage.h5"), None), TypeError, "observables")
case("load_observed", "device nosuch", lambda: _data(
    "load_observed", _tmpfile("garbage.h5"), _obs(), device="nosuchdevice"), _ANY, "device")
case("load_parton", "path missing", lambda: _data(
    "load_parton", "/nonexistent-dir/ev.h5", _P), FileNotFoundError, "ev.h5")
case("load_parton", "path garbage", lambda: _data(
    "load_parton", _tmpfile("garbage.h5"), _P), (ValueError, OSError), "garbage.h5")
case("load_parton", "process=None", lambda: _data(
    "load_parton", _tmpfile("garbage.h5"), None), TypeError, "process")


def _small_model():
    from _helpers import small_mem_model

    return small_mem_model()


for label, kw, exc, pat in (
        ("model=None", {"model": None}, TypeError, "model"),
        ("data missing", {"data": "/nonexistent-dir/ev.h5"}, FileNotFoundError, "ev.h5"),
        ("n_samples=0", {"n_samples": 0}, ValueError, "n_samples"),
        ("n_fiducial=1", {"n_fiducial": 1}, ValueError, "n_fiducial"),
        ("seed=-1", {"seed": -1}, ValueError, "seed"),
        ("on_flagged nosuch", {"on_flagged": "nosuch"}, ValueError, "on_flagged"),
        ("device nosuch", {"device": "nosuchdevice"}, ValueError, "device"),
        ("parameters unknown", {"parameters": ["nosuch"]}, ValueError, "nosuch")):
    case("model_likelihood", label, lambda kw=kw: _data(
        "model_likelihood", **({"data": _tmpfile("garbage.h5")} | kw
                               | ({} if "model" in kw else {"model": _small_model()}))),
         exc, pat)
for label, models, exc, pat in (("models empty", {}, ValueError, "models"),
                                ("models=None", None, _ANY, "models"),
                                ("models list", [3], _ANY, "models"),
                                ("model not a model", {"ee": 3}, TypeError, "ee")):
    case("channel_likelihood", label, lambda m=models: _data(
        "channel_likelihood", m, _tmpfile("garbage.h5")), exc, pat)

# -- invsim.pairs.simulate -------------------------------------------------------------
def _simulate(**kw):
    from invsim.pairs import simulate

    args = {"process": _P, "detector": _gdet(), "n_trials": 100} | kw
    return simulate(args.pop("process"), args.pop("detector"), args.pop("n_trials"), **args)


for label, kw, exc, pat in (
        ("n_trials=0", {"n_trials": 0}, ValueError, "n_trials"),
        ("n_trials=1.5", {"n_trials": 1.5}, _ANY, "n_trials"),
        ("n_trials=HUGE", {"n_trials": HUGE}, ValueError, "n_trials"),
        ("chunk_size=0", {"chunk_size": 0}, ValueError, "chunk_size"),
        ("seed=-1", {"seed": -1}, ValueError, "seed"),
        ("device nosuch", {"device": "nosuchdevice"}, ValueError, "device"),
        ("process=None", {"process": None}, TypeError, "process"),
        ("detector=None", {"detector": None}, TypeError, "detector"),
        ("theta unknown", {"theta": {"nosuch": 1.0}}, ValueError, "nosuch"),
        ("theta NaN", {"theta": {"mzp": NAN}}, ValueError, "mzp")):
    case("simulate", label, lambda kw=kw: _simulate(**kw), exc, pat)

# -- invsim.mem: build_model, build_dilepton_model, MEMModel, proposals, tables --------
def _build(name, **kw):
    from invsim.mem import recipe

    args = {"process": _P, "detector": _gdet(), "n_trials": 2000, "epochs": 1} | kw
    return getattr(recipe, name)(args.pop("process"), args.pop("detector"), **args)


for b in ("build_model", "build_dilepton_model"):
    for label, kw, exc, pat in (
            ("n_trials=0", {"n_trials": 0}, ValueError, "n_trials"),
            ("n_trials=HUGE", {"n_trials": HUGE}, ValueError, "n_trials"),
            ("epochs=0", {"epochs": 0}, ValueError, "epochs"),
            ("epochs=1.5", {"epochs": 1.5}, _ANY, "epochs"),
            ("seed=-1", {"seed": -1}, ValueError, "seed"),
            ("hidden=()", {"hidden": ()}, ValueError, "hidden"),
            ("batch_size=0", {"batch_size": 0}, ValueError, "batch_size"),
            ("lr NaN", {"lr": NAN}, ValueError, "lr"),
            ("smearings=0", {"smearings": 0}, ValueError, "smearings"),
            ("device nosuch", {"device": "nosuchdevice"}, ValueError, "device"),
            ("process=None", {"process": None}, TypeError, "process"),
            ("detector=None", {"detector": None}, TypeError, "detector"),
            ("theta unknown", {"theta": {"nosuch": 1.0}}, ValueError, "nosuch")):
        case(b, label, lambda b=b, kw=kw: _build(b, **kw), exc, pat)
case("build_model", "points_per_axis=0", lambda: _build("build_model", points_per_axis=0),
     ValueError, "points_per_axis")
case("build_model", "ranges reversed", lambda: _build("build_model",
                                                      ranges={"mzp": (2500.0, 1500.0)}),
     ValueError, "mzp|ranges")


def _mem_model(**kw):
    from invsim.mem import MEMModel

    m = _small_model()
    args = {"process": m.process, "proposal": m.proposal, "transfer": m.transfer} | kw
    return MEMModel(args.pop("process"), args.pop("proposal"), args.pop("transfer"), **args)


for label, kw, exc, pat in (("process=None", {"process": None}, TypeError, "process"),
                            ("proposal=None", {"proposal": None}, TypeError, "proposal"),
                            ("transfer=None", {"transfer": None}, TypeError, "transfer"),
                            ("hard_observables nosuch", {"hard_observables": "nosuch"},
                             ValueError, "hard_observables"),
                            ("channel=99", {"channel": 99}, ValueError, "channel"),
                            ("params NaN", {"params": {"mzp": NAN}}, ValueError, "mzp"),
                            ("ranges reversed", {"ranges": {"mzp": (2.0, 1.0)}}, ValueError,
                             "mzp|ranges"),
                            ("device nosuch", {"device": "nosuchdevice"}, ValueError,
                             "device")):
    case("MEMModel", label, lambda kw=kw: _mem_model(**kw), exc, pat)


def _mem_load(path):
    from invsim.mem import MEMModel

    return MEMModel.load(path)


case("MEMModel.load", "path missing", lambda: _mem_load("/nonexistent-dir/model"),
     FileNotFoundError, "model")
case("MEMModel.load", "path empty dir", lambda: _mem_load(_tmpfile("emptymodel", None).parent),
     (ValueError, FileNotFoundError), "invsim-fuzz|manifest|model")
case("MEMModel.load", "path a file", lambda: _mem_load(_tmpfile("filemodel")),
     (ValueError, FileNotFoundError, NotADirectoryError), "filemodel")
case("MEMModel.save", "path in missing dir", lambda: _small_model().save(
    "/nonexistent-dir/sub/model"), (FileNotFoundError, ValueError), "nonexistent-dir")
case("MEMModel.save", "path=3", lambda: _small_model().save(3), TypeError, "path")


def _channels(ch):
    from invsim.mem import ChannelLikelihood

    return ChannelLikelihood(ch)


for label, ch, exc, pat in (("empty", {}, ValueError, "channels"),
                            ("None", None, TypeError, "channels"),
                            ("list", [_gm()], TypeError, "channels"),
                            ("value 3", {"ee": 3}, TypeError, "ee"),
                            ("name 3", {3: _gm()}, TypeError, "channel|name")):
    case("ChannelLikelihood", f"channels {label}", lambda c=ch: _channels(c), exc, pat)


def _rgp(*a, **kw):
    from invsim.mem.reco_proposal import RecoGaussianProposal

    return RecoGaussianProposal(*a, **kw)


for label, a, kw, exc, pat in (("detector=None", (None,), {}, TypeError, "detector"),
                               ("sqrt_s=-1", (_gdet(), -1.0), {}, ValueError, "sqrt_s"),
                               ("sqrt_s NaN", (_gdet(), NAN), {}, ValueError, "sqrt_s"),
                               ("scale=0", (_gdet(),), {"scale": 0.0}, ValueError, "scale"),
                               ("scale NaN", (_gdet(),), {"scale": NAN}, ValueError, "scale"),
                               ("df=0", (_gdet(),), {"df": 0}, ValueError, "df"),
                               ("df=1.5", (_gdet(),), {"df": 1.5}, _ANY, "df")):
    case("RecoGaussianProposal", label, lambda a=a, kw=kw: _rgp(*a, **kw), exc, pat)
case("RecoGaussianProposal.load", "path missing", lambda: __import__(
    "invsim.mem.reco_proposal").mem.reco_proposal.RecoGaussianProposal.load(
    "/nonexistent-dir/p.pt"), FileNotFoundError, "p.pt")
case("RecoGaussianProposal.load", "path garbage", lambda: __import__(
    "invsim.mem.reco_proposal").mem.reco_proposal.RecoGaussianProposal.load(
    _tmpfile("garbage.pt")), (ValueError, OSError), "garbage.pt")


def _rt(*a):
    from invsim.mem.resolution import ResolutionTable

    return ResolutionTable(*a)


_RW = torch.full((2, 2, 3), 0.01, dtype=F64)
for label, a, exc, pat in (("eta_edges decreasing", ([1.0, 0.5], [5.0], torch.full(
                                (3, 2, 3), 0.01, dtype=F64)), ValueError, "eta_edges"),
                           ("eta_edges NaN", ([NAN], [5.0], _RW), ValueError, "eta_edges"),
                           ("widths shape", ([1.0], [5.0], torch.ones(2, 2)), ValueError,
                            "widths"),
                           ("widths negative", ([1.0], [5.0], -_RW), ValueError, "widths"),
                           ("widths NaN", ([1.0], [5.0], _RW * NAN), ValueError, "widths"),
                           ("widths string", ([1.0], [5.0], "abc"), _ANY, "widths")):
    case("ResolutionTable", label, lambda a=a: _rt(*a), exc, pat)
_XH = torch.rand(50, 6, dtype=F64) + 1.0
for label, a, kw, exc, pat in (
        ("shapes differ", (_XH, _XH[:40]), {}, ValueError, "x_reco|x_hard"),
        ("3 columns per lepton", (_XH[:, :5], _XH[:, :5]), {}, ValueError, "x_hard"),
        ("NaN", (_XH * NAN, _XH), {}, ValueError, "x_hard"),
        ("eta_bins=0", (_XH, _XH), {"eta_bins": 0}, ValueError, "eta_bins"),
        ("min_count=1", (_XH, _XH), {"min_count": 1}, ValueError, "min_count")):
    case("ResolutionTable.fit", label, lambda a=a, kw=kw: __import__(
        "invsim.mem.resolution").mem.resolution.ResolutionTable.fit(*a, **kw), exc, pat)

# -- invsim.observables ----------------------------------------------------------------
for k, v in (("leptons", -1), ("leptons", 1.5), ("electrons", 3), ("electrons", -1),
             ("jets", -1), ("bjets", "2"), ("met", "yes"), ("lepton_pt_min", NAN),
             ("lepton_pt_min", -1.0), ("lepton_eta_max", -1.0), ("jet_pt_min", NAN)):
    case("RecoObservables", f"{k}={v!r}", lambda k=k, v=v: _obs(**{k: v}), _ANY, k)
case("RecoObservables", "no objects", lambda: _obs(leptons=0), ValueError,
     "leptons|object")
case("RecoObservables.extract", "reco=None", lambda: _obs().extract(None), TypeError, "reco")
case("RecoObservables.extract", "reco=tensor", lambda: _obs().extract(torch.ones(3, 6)),
     TypeError, "reco")

# -- invsim.transfer, invsim.unfold, invsim.exact --------------------------------------
def _pp(n=1):
    from invsim.flows import observable_preprocessing

    return observable_preprocessing(["real"] * n)


def _tf(**kw):
    from invsim.flows import FlowConfig
    from invsim.transfer import TransferFunction

    args = {"reco_preprocessing": _pp(), "hard_preprocessing": _pp(),
            "config": FlowConfig(transforms=1, hidden_features=(4,))} | kw
    return TransferFunction(args.pop("reco_preprocessing"), args.pop("hard_preprocessing"),
                            args.pop("config"), **args)


for label, kw, exc, pat in (
        ("reco_preprocessing=None", {"reco_preprocessing": None}, TypeError,
         "reco_preprocessing"),
        ("hard_preprocessing=dict", {"hard_preprocessing": {}}, TypeError,
         "hard_preprocessing"),
        ("config=dict", {"config": {"transforms": 1}}, TypeError, "config"),
        ("seed=-1", {"seed": -1}, ValueError, "seed"),
        ("seed=1.5", {"seed": 1.5}, TypeError, "seed"),
        ("dtype=int64", {"dtype": torch.int64}, _ANY, "dtype"),
        ("periodic out of range", {"periodic": (5,)}, ValueError, "periodic")):
    case("TransferFunction", label, lambda kw=kw: _tf(**kw), exc, pat)
_H1 = torch.rand(8, 1, dtype=F64)
for label, a, exc, pat in (
        ("log_prob rows differ", ("log_prob", _H1, _H1[:5]), ValueError, "x_reco|x_hard"),
        ("log_prob columns", ("log_prob", torch.rand(8, 3, dtype=F64), _H1), ValueError,
         "x_reco"),
        ("log_prob NaN", ("log_prob", _H1 * NAN, _H1), ValueError, "x_reco"),
        ("log_prob string", ("log_prob", "abc", _H1), _ANY, "x_reco"),
        ("sample n=0", ("sample", _H1, 0), ValueError, "n"),
        ("sample NaN", ("sample", _H1 * NAN), ValueError, "x_hard")):
    case("TransferFunction.method", label, lambda a=a: getattr(_tf(), a[0])(*a[1:]), exc, pat)
for label, kw, exc, pat in (
        ("x_hard NaN", {"x_hard": _H1 * NAN}, ValueError, "x_hard"),
        ("rows differ", {"x_reco": _H1[:5]}, ValueError, "x_reco|x_hard"),
        ("config=dict", {"config": {"epochs": 1}}, TypeError, "config"),
        ("seed=-1", {"seed": -1}, ValueError, "seed"),
        ("checkpoint missing dir", {"checkpoint": "/nonexistent-dir/ck.pt"},
         (ValueError, FileNotFoundError), "checkpoint|nonexistent")):
    case("TransferFunction.fit", label, lambda kw=kw: _tf().fit(**(
        {"x_hard": _H1, "x_reco": _H1, "progress": False} | kw)), exc, pat)
for cls in ("TransferFunction", "AcceptanceClassifier", "Unfolder"):
    case(f"{cls}.load", "path missing", lambda c=cls: getattr(
        __import__(f"invsim.{'unfold' if c == 'Unfolder' else 'transfer'}",
                   fromlist=[c]), c).load("/nonexistent-dir/flow.pt"), FileNotFoundError,
         "flow.pt")
    case(f"{cls}.load", "path garbage", lambda c=cls: getattr(
        __import__(f"invsim.{'unfold' if c == 'Unfolder' else 'transfer'}",
                   fromlist=[c]), c).load(_tmpfile("garbage.pt")), (ValueError, OSError),
         "garbage.pt")


def _acc(**kw):
    from invsim.transfer import AcceptanceClassifier

    args = {"hard_preprocessing": _pp(), "hidden_features": (4,)} | kw
    return AcceptanceClassifier(args.pop("hard_preprocessing"), **args)


for label, kw, exc, pat in (
        ("hard_preprocessing=None", {"hard_preprocessing": None}, TypeError,
         "hard_preprocessing"),
        ("hidden_features=(0,)", {"hidden_features": (0,)}, ValueError, "hidden_features"),
        ("hidden_features='64'", {"hidden_features": "64"}, _ANY, "hidden_features"),
        ("seed=-1", {"seed": -1}, ValueError, "seed"),
        ("dtype=int64", {"dtype": torch.int64}, _ANY, "dtype")):
    case("AcceptanceClassifier", label, lambda kw=kw: _acc(**kw), exc, pat)
_PASSED = torch.tensor([True, False] * 4)
for label, kw, exc, pat in (
        ("passed length", {"passed": _PASSED[:5]}, ValueError, "passed"),
        ("passed 1.5", {"passed": torch.full((8,), 1.5)}, _ANY, "passed"),
        ("x_hard NaN", {"x_hard": _H1 * NAN}, ValueError, "x_hard"),
        ("seed=-1", {"seed": -1}, ValueError, "seed")):
    case("AcceptanceClassifier.fit", label, lambda kw=kw: _acc().fit(**(
        {"x_hard": _H1, "passed": _PASSED, "progress": False} | kw)), exc, pat)


def _unfolder(**kw):
    from invsim.hardspace import HardCoordinates
    from invsim.unfold import Unfolder

    args = {"coordinates": HardCoordinates.from_process(_P), "reco_preprocessing": _pp(6)} | kw
    return Unfolder(args.pop("coordinates"), args.pop("reco_preprocessing"), **args)


for label, kw, exc, pat in (("coordinates=None", {"coordinates": None}, TypeError,
                             "coordinates"),
                            ("reco_preprocessing=None", {"reco_preprocessing": None}, TypeError,
                             "reco_preprocessing"),
                            ("theta_names string", {"theta_names": "mzp"}, TypeError,
                             "theta_names"),
                            ("seed=-1", {"seed": -1}, ValueError, "seed"),
                            ("azimuth out of range", {"azimuth": (0, 99)}, ValueError,
                             "azimuth")):
    case("Unfolder", label, lambda kw=kw: _unfolder(**kw), exc, pat)
for label, a, exc, pat in (("sample n=0", ("sample", torch.rand(3, 6, dtype=F64), 0),
                            ValueError, "n"),
                           ("sample x_reco shape", ("sample", torch.rand(3, 2, dtype=F64), 2),
                            ValueError, "x_reco"),
                           ("sample x_reco NaN", ("sample", torch.full((3, 6), NAN,
                                                                       dtype=F64), 2),
                            ValueError, "x_reco")):
    case("Unfolder.method", label, lambda a=a: getattr(_unfolder(), a[0])(*a[1:]), exc, pat)


def _exact(cls, *a, **kw):
    import invsim.exact

    return getattr(invsim.exact, cls)(*a, **kw)


for cls in ("ExactTransfer", "ExactAcceptance"):
    for label, a, kw, exc, pat in (("detector=3", (3,), {}, _ANY, "detector"),
                                   ("n_leptons=0", (_gdet(), 0), {}, ValueError, "n_leptons"),
                                   ("pt_min NaN", (_gdet(),), {"pt_min": NAN}, ValueError,
                                    "pt_min"),
                                   ("eta_max=0", (_gdet(),), {"eta_max": 0.0}, ValueError,
                                    "eta_max")):
        case(cls, label, lambda c=cls, a=a, kw=kw: _exact(c, *a, **kw), exc, pat)
for label, a, exc, pat in (("x_reco columns", (torch.ones(3, 5, dtype=F64),
                                               torch.ones(3, 6, dtype=F64)), ValueError,
                            "x_reco"),
                           ("rows differ", (torch.ones(3, 6, dtype=F64),
                                            torch.ones(2, 6, dtype=F64)), ValueError,
                            "x_reco|x_hard"),
                           ("x_hard NaN", (torch.ones(3, 6, dtype=F64),
                                           torch.full((3, 6), NAN, dtype=F64)), ValueError,
                            "x_hard")):
    case("ExactTransfer.log_prob", label,
         lambda a=a: _exact("ExactTransfer", _gdet()).log_prob(*a), exc, pat)

# -- invsim.bruteforce, PartonLikelihood -----------------------------------------------
def _brute(**kw):
    from invsim.bruteforce import brute_force_log_likelihood

    x = torch.tensor([[300.0, 0.1, 0.2, 280.0, -0.3, 3.0]], dtype=F64)
    args = {"process": _P, "detector": _gdet(), "x_reco": x, "theta": {"mzp": 2000.0},
            "n_samples": 100, "n_fiducial": 1000} | kw
    return brute_force_log_likelihood(args.pop("process"), args.pop("detector"),
                                      args.pop("x_reco"), args.pop("theta"), **args)


for label, kw, exc, pat in (
        ("x_reco NaN", {"x_reco": torch.full((1, 6), NAN, dtype=F64)}, ValueError, "x_reco"),
        ("x_reco columns", {"x_reco": torch.ones(1, 5, dtype=F64)}, ValueError, "x_reco"),
        ("theta unknown", {"theta": {"nosuch": 1.0}}, ValueError, "nosuch"),
        ("theta NaN", {"theta": {"mzp": NAN}}, ValueError, "mzp"),
        ("n_samples=0", {"n_samples": 0}, ValueError, "n_samples"),
        ("n_samples=HUGE", {"n_samples": HUGE}, ValueError, "n_samples"),
        ("n_fiducial=0", {"n_fiducial": 0}, ValueError, "n_fiducial"),
        ("chunk_size=0", {"chunk_size": 0}, ValueError, "chunk_size"),
        ("seed=-1", {"seed": -1}, ValueError, "seed"),
        ("scale=0", {"scale": 0.0}, ValueError, "scale"),
        ("df=0", {"df": 0}, ValueError, "df")):
    case("brute_force_log_likelihood", label, lambda kw=kw: _brute(**kw), exc, pat)


def _parton(**kw):
    from forward.events import HardEvents
    from invsim.mem import PartonLikelihood

    p = torch.tensor([[[1000.0, 0, 300, 400], [1000.0, 0, -300, -400]]], dtype=F64)
    ev = HardEvents(p, torch.tensor([0.2], dtype=F64), torch.tensor([0.2], dtype=F64), 13000.0)
    args = {"process": _P, "events": ev, "n_fiducial": 1000} | kw
    return PartonLikelihood(args.pop("process"), args.pop("events"), **args)


for label, kw, exc, pat in (("events=None", {"events": None}, TypeError, "events"),
                            ("events=tensor", {"events": torch.ones(1, 2, 4)}, TypeError,
                             "events"),
                            ("process=None", {"process": None}, TypeError, "process"),
                            ("n_fiducial=0", {"n_fiducial": 0}, ValueError, "n_fiducial"),
                            ("n_fiducial=HUGE", {"n_fiducial": HUGE}, ValueError,
                             "n_fiducial"),
                            ("chunk_size=0", {"chunk_size": 0}, ValueError, "chunk_size"),
                            ("seed=-1", {"seed": -1}, ValueError, "seed"),
                            ("parameter_names unknown", {"parameter_names": ["nosuch"]},
                             ValueError, "nosuch"),
                            ("device nosuch", {"device": "nosuchdevice"}, ValueError,
                             "device")):
    case("PartonLikelihood", label, lambda kw=kw: _parton(**kw), exc, pat)

# -- invsim.infer: profile_likelihood, find_mode, build_priors, save/load_inference ----
def _infer(name, *a, **kw):
    import invsim.infer

    return getattr(invsim.infer, name)(*a, **kw)


for label, a, kw, exc, pat in (
        ("problem=None", (None, "mu", _G3["mu"]), {}, TypeError, "problem"),
        ("name unknown", ("nosuch", _G3["mu"]), {}, ValueError, "nosuch"),
        ("grid NaN", ("mu", torch.tensor([0.0, NAN, 1.0], dtype=F64)), {}, ValueError, "grid"),
        ("grid 2 points", ("mu", torch.tensor([0.0, 1.0], dtype=F64)), {}, ValueError,
         "grid"),
        ("grid decreasing", ("mu", torch.tensor([1.0, 0.5, 0.0], dtype=F64)), {}, ValueError,
         "grid"),
        ("level=-1", ("mu", _G3["mu"]), {"level": -1.0}, ValueError, "level"),
        ("max_iter=0", ("mu", _G3["mu"]), {"max_iter": 0}, ValueError, "max_iter"),
        ("fixed unknown", ("mu", _G3["mu"]), {"fixed": {"nu": 1.0}}, ValueError, "nu")):
    case("profile_likelihood", label, lambda a=a, kw=kw: _infer(
        "profile_likelihood", *(a if a[0] is None else (_problem(), *a)), **kw), exc, pat)
for label, kw, exc, pat in (("problem=None", {"problem": None}, TypeError, "problem"),
                            ("starts=0", {"starts": 0}, ValueError, "starts"),
                            ("starts=HUGE", {"starts": HUGE}, ValueError, "starts"),
                            ("seed=-1", {"seed": -1}, ValueError, "seed"),
                            ("max_iter=0", {"max_iter": 0}, ValueError, "max_iter")):
    case("find_mode", label, lambda kw=kw: _infer(
        "find_mode", kw.pop("problem", None) if "problem" in kw else _problem(),
        **{k: v for k, v in kw.items() if k != "problem"}), exc, pat)
for label, a, kw, exc, pat in (
        ("parameters=None", (None,), {}, TypeError, "parameters"),
        ("names unknown", (_gm().parameters, ["nosuch"]), {}, ValueError, "nosuch"),
        ("overrides not a distribution", (_gm().parameters, ["mu"]), {"overrides": {"mu": 3}},
         TypeError, "mu"),
        ("overrides unknown", (_gm().parameters, ["mu"]),
         {"overrides": {"nu": torch.distributions.Normal(0.0, 1.0)}}, ValueError, "nu"),
        ("device nosuch", (_gm().parameters, ["mu"]), {"device": "nosuchdevice"}, ValueError,
         "device")):
    case("build_priors", label, lambda a=a, kw=kw: build_priors(*a, **kw), exc, pat)
case("save_inference", "idata=None", lambda: _infer("save_inference", None, "/tmp/x.nc"),
     TypeError, "idata")
case("save_inference", "path in missing dir", lambda: _infer(
    "save_inference", __import__("arviz").from_dict({"mu": [[0.0, 1.0]]}),
    "/nonexistent-dir/sub/p.nc"), (FileNotFoundError, ValueError), "nonexistent-dir")
case("load_inference", "path missing", lambda: _infer("load_inference", "/nonexistent-dir/p.nc"),
     FileNotFoundError, "p.nc")
case("load_inference", "path garbage", lambda: _infer("load_inference", _tmpfile("garbage.nc")),
     (ValueError, OSError), "garbage.nc")

# -- invsim.calibration, invsim.baselines ----------------------------------------------
def _priors():
    return {"mu": torch.distributions.Uniform(torch.tensor(-1.0, dtype=F64),
                                              torch.tensor(1.0, dtype=F64))}


def _sim(theta, generator):
    return theta["mu"] + torch.randn(5, generator=generator, dtype=F64)


def _calib(name, **kw):
    import invsim.calibration

    return getattr(invsim.calibration, name)(**kw)


def _never(*_a, **_k):
    raise AssertionError("the bad value should have been refused before any call")


for label, kw, exc, pat in (
        ("priors empty", {"priors": {}}, _ANY, "priors"),
        ("priors not distributions", {"priors": {"mu": 3}}, TypeError, "mu"),
        ("simulate=None", {"simulate": None}, TypeError, "simulate"),
        ("infer=3", {"infer": 3}, TypeError, "infer"),
        ("n_simulations=0", {"n_simulations": 0}, ValueError, "n_simulations"),
        ("n_simulations=HUGE", {"n_simulations": HUGE}, ValueError, "n_simulations"),
        ("num_posterior_samples=0", {"num_posterior_samples": 0}, ValueError,
         "num_posterior_samples"),
        ("seed=-1", {"seed": -1}, ValueError, "seed")):
    case("simulation_based_calibration", label, lambda kw=kw: _calib(
        "simulation_based_calibration",
        **({"priors": _priors(), "simulate": _never, "infer": _never} | kw)), exc, pat)
for label, kw, exc, pat in (
        ("theta_true empty", {"theta_true": {}}, _ANY, "theta_true"),
        ("theta_true NaN", {"theta_true": {"mu": NAN}}, ValueError, "mu"),
        ("simulate=None", {"simulate": None}, TypeError, "simulate"),
        ("n_experiments=0", {"n_experiments": 0}, ValueError, "n_experiments"),
        ("levels 1.5", {"levels": (1.5,)}, ValueError, "levels"),
        ("levels empty", {"levels": ()}, ValueError, "levels"),
        ("seed=-1", {"seed": -1}, ValueError, "seed")):
    case("coverage", label, lambda kw=kw: _calib(
        "coverage", **({"simulate": _never, "infer": _never, "theta_true": {"mu": 0.0}}
                       | kw)), exc, pat)


def _npe(**kw):
    from invsim.baselines import train_npe

    args = {"priors": _priors(), "simulate": _never, "n_simulations": 50,
            "max_epochs": 1} | kw
    return train_npe(args.pop("priors"), args.pop("simulate"), **args)


for label, kw, exc, pat in (("priors empty", {"priors": {}}, _ANY, "priors"),
                            ("simulate=None", {"simulate": None}, TypeError, "simulate"),
                            ("n_simulations=0", {"n_simulations": 0}, ValueError,
                             "n_simulations"),
                            ("n_simulations=HUGE", {"n_simulations": HUGE}, ValueError,
                             "n_simulations"),
                            ("density_estimator nosuch", {"density_estimator": "nosuch"},
                             ValueError, "density_estimator"),
                            ("max_epochs=0", {"max_epochs": 0}, ValueError, "max_epochs"),
                            ("batch_size=0", {"batch_size": 0}, ValueError, "batch_size"),
                            ("seed=-1", {"seed": -1}, ValueError, "seed"),
                            ("embedding=3", {"embedding": 3}, TypeError, "embedding")):
    case("train_npe", label, lambda kw=kw: _npe(**kw), exc, pat)

# -- invsim.flows ----------------------------------------------------------------------
def _flows(name, *a, **kw):
    import invsim.flows

    return getattr(invsim.flows, name)(*a, **kw)


for k, v in (("kind", "nosuch"), ("transforms", 0), ("hidden_features", ()),
             ("hidden_features", (0,)), ("bins", 0), ("transforms", 1.5)):
    case("FlowConfig", f"{k}={v!r}", lambda k=k, v=v: _flows("FlowConfig", **{k: v}), _ANY, k)
for k, v in (("epochs", 0), ("batch_size", 0), ("lr", NAN), ("lr", -1.0),
             ("validation_fraction", 1.5), ("scheduler", "nosuch"), ("patience", 0)):
    case("TrainConfig", f"{k}={v!r}", lambda k=k, v=v: _flows("TrainConfig", **{k: v}), _ANY, k)
for label, a, exc, pat in (("features=0", (0, 1), ValueError, "features"),
                           ("context=-1", (2, -1), ValueError, "context"),
                           ("features=1.5", (1.5, 1), _ANY, "features"),
                           ("config=dict", (2, 1, {}), TypeError, "config")):
    case("build_flow", label, lambda a=a: _flows(
        "build_flow", *a, *(() if len(a) == 3 else (_flows("FlowConfig"),))), exc, pat)
case("load_flow", "path missing", lambda: _flows("load_flow", "/nonexistent-dir/f.pt"),
     FileNotFoundError, "f.pt")
case("load_flow", "path garbage", lambda: _flows("load_flow", _tmpfile("garbage.pt")),
     (ValueError, OSError), "garbage.pt")

# -- forward.surrogate, forward.shower -------------------------------------------------
def _training_data(**kw):
    from forward.surrogate import generate_training_data

    args = {"process": _P, "n": 100} | kw
    return generate_training_data(args.pop("process"), args.pop("n"), **args)


for label, kw, exc, pat in (("n=0", {"n": 0}, ValueError, "n"),
                            ("n=1.5", {"n": 1.5}, _ANY, "n"),
                            ("n=HUGE", {"n": HUGE}, ValueError, "n"),
                            ("process=None", {"process": None}, TypeError, "process"),
                            ("batch_size=0", {"batch_size": 0}, ValueError, "batch_size"),
                            ("max_batches=0", {"max_batches": 0}, ValueError, "max_batches"),
                            ("generator=3", {"generator": 3}, TypeError, "generator"),
                            ("channel=99", {"channel": 99}, ValueError, "channel"),
                            ("device nosuch", {"device": "nosuchdevice"}, ValueError,
                             "device")):
    case("generate_training_data", label, lambda kw=kw: _training_data(**kw), exc, pat)


def _shower(**kw):
    from forward.shower import shower

    args = {"events": _events()} | kw
    return shower(args.pop("events"), **args)


for label, kw, exc, pat in (("events=None", {"events": None}, TypeError, "events"),
                            ("events=tensor", {"events": torch.ones(2, 2, 4)}, TypeError,
                             "events"),
                            ("seed=-1", {"seed": -1}, ValueError, "seed"),
                            ("settings=dict", {"settings": {"a": 1}}, TypeError, "settings"),
                            ("scales shape", {"scales": torch.ones(3, dtype=F64)}, ValueError,
                             "scales"),
                            ("workdir missing", {"workdir": "/nonexistent-dir/work"},
                             (ValueError, FileNotFoundError), "workdir|nonexistent")):
    case("shower", label, lambda kw=kw: _shower(**kw), exc, pat)

# -- detector cards, kinematics, unfolding diagnostics, surrogate config ---------------
def _card(c):
    from forward.detector import load_card

    return load_card(c)


for label, c, exc, pat in (("missing file", "/nonexistent-dir/card.json", FileNotFoundError,
                            "card.json"),
                           ("garbage file", "GARBAGE", (ValueError, OSError), "garbage.json"),
                           ("unknown key", {"nosuch": 1}, ValueError, "nosuch"),
                           ("card=3", 3, TypeError, "card"),
                           ("negative resolution",
                            {"electrons": {"resolution": {"a": -0.1}}}, ValueError,
                            "electrons|resolution|a")):
    case("load_card", label, lambda c=c: _card(_tmpfile("garbage.json") if c == "GARBAGE"
                                               else c), exc, pat)


def _kin(name, *a):
    from forward import kinematics

    return getattr(kinematics, name)(*a)


for name in ("mass", "pt", "rapidity", "pseudorapidity"):
    case(f"kinematics.{name}", "p last dim 3", lambda n=name: _kin(n, torch.ones(3, 3, dtype=F64)),
         ValueError, "p")
    case(f"kinematics.{name}", "p int", lambda n=name: _kin(n, torch.ones(3, 4, dtype=torch.long)),
         TypeError, "p")
case("kinematics.boost", "beta |v| >= 1", lambda: _kin(
    "boost", torch.ones(2, 4, dtype=F64), torch.full((2, 3), 0.9, dtype=F64)), ValueError, "beta")


def _diag(name, *a, **kw):
    import invsim.unfold_diagnostics

    return getattr(invsim.unfold_diagnostics, name)(*a, **kw)


_S = torch.rand(40, dtype=F64)
for label, a, kw, exc, pat in (
        ("auc_score NaN", ("auc_score", _S * NAN, _S), {}, ValueError, "scores_a"),
        ("auc_score empty", ("auc_score", _S[:0], _S), {}, ValueError, "scores_a"),
        ("histogram_ratio bins=0", ("histogram_ratio", _S, _S), {"bins": 0}, ValueError,
         "bins"),
        ("histogram_ratio NaN", ("histogram_ratio", _S * NAN, _S), {}, ValueError, "a"),
        ("histogram_ratio range reversed", ("histogram_ratio", _S, _S),
         {"range": (1.0, 0.0)}, ValueError, "range"),
        ("histogram_ratio weights shape", ("histogram_ratio", _S, _S),
         {"weights_a": _S[:5]}, ValueError, "weights_a"),
        ("calibration levels 1.5", ("calibration", {"mu": _S.view(40, 1)}, {"mu": _S[:1]}),
         {"levels": (1.5,)}, ValueError, "levels"),
        ("calibration names differ", ("calibration", {"mu": _S.view(40, 1)}, {"nu": _S[:1]}),
         {}, ValueError, "mu|nu|truth"),
        ("two_sample test_fraction=1", ("classifier_two_sample_test", _S.view(40, 1),
                                        _S.view(40, 1)), {"test_fraction": 1.0}, ValueError,
         "test_fraction"),
        ("two_sample columns differ", ("classifier_two_sample_test", _S.view(40, 1),
                                       _S.view(20, 2)), {}, ValueError, "a|b")):
    case(f"unfold_diagnostics.{a[0]}", label, lambda a=a, kw=kw: _diag(*a, **kw), exc, pat)


def _sconf(**kw):
    from forward.surrogate import SurrogateConfig

    return SurrogateConfig(**kw)


for k, v in (("kind", "nosuch"), ("hidden", 0), ("layers", 0), ("members", 0), ("epochs", -1),
             ("batch_size", 0), ("lr", NAN), ("val_fraction", 1.5), ("reference", "nosuch"),
             ("device", "nosuchdevice"), ("dtype", torch.int64)):
    case("SurrogateConfig", f"{k}={v!r}", lambda k=k, v=v: _sconf(**{k: v}), _ANY, k)
case("train_surrogate", "data=None", lambda: __import__("forward.surrogate").surrogate
     .train_surrogate(_P, None), TypeError, "data")
case("train_surrogate", "config=dict", lambda: __import__("forward.surrogate").surrogate
     .train_surrogate(_P, _training_data(n=50), {"epochs": 1}), TypeError, "config")


def _saved_events() -> Path:
    from forward.io import save_hdf5

    return save_hdf5(_events(), _tmpfile("ev.h5", None))


for label, kw, exc, pat in (("tree on an invsim file", {"tree": "Events"}, _ANY, "tree"),
                            ("final_state not in the file", {"final_state": [22, 22]},
                             ValueError, "final_state"),
                            ("final_state float", {"final_state": [11.5, -11.0]}, _ANY,
                             "final_state"),
                            ("unknown keyword", {"nosuch": 1}, TypeError, "nosuch"),
                            ("device nosuch", {"device": "nosuchdevice"}, ValueError,
                             "device")):
    case("read_events", label, lambda kw=kw: read_events(_saved_events(), **kw), exc, pat)
case("load_hdf5", "device nosuch", lambda: load_hdf5(_saved_events(), device="nosuchdevice"),
     ValueError, "device")
case("Unfolder.method", "log_prob hard=None", lambda: _unfolder().log_prob(
    None, torch.rand(3, 6, dtype=F64)), TypeError, "hard")
case("Unfolder.method", "fit hard=tensor", lambda: _unfolder().fit(
    torch.rand(3, 2, 4, dtype=F64), torch.rand(3, 6, dtype=F64), progress=False), TypeError,
     "hard")


# -- readers ---------------------------------------------------------------------------
def _garbage(tmp: Path, name: str) -> Path:
    p = tmp / name
    p.write_bytes(b"this is not an event file\x00\xff" * 10)
    return p


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    return {"missing": tmp / "missing.h5", "dir": tmp, "h5": _garbage(tmp, "bad.h5"),
            "lhe": _garbage(tmp, "bad.lhe"), "txt": _garbage(tmp, "bad.xyz")}


READERS = [
    ("load_hdf5", load_hdf5, "missing", (FileNotFoundError, ValueError, OSError)),
    ("load_hdf5", load_hdf5, "dir", (ValueError, OSError)),
    ("load_hdf5", load_hdf5, "h5", (ValueError, OSError)),
    ("read_events", read_events, "missing", (FileNotFoundError, ValueError, OSError)),
    ("read_events", read_events, "h5", (ValueError, OSError)),
    ("read_events", read_events, "txt", (ValueError, OSError)),
    ("read_events", read_events, "dir", (ValueError, OSError)),
    ("read_lhe", read_lhe, "missing", (FileNotFoundError, ValueError, OSError)),
    ("read_lhe", read_lhe, "lhe", (ValueError, OSError)),
    ("read_root", read_root, "missing", (FileNotFoundError, ValueError, OSError)),
    ("read_root", read_root, "txt", (ValueError, OSError)),
    ("read_nanoaod", read_nanoaod, "missing", (FileNotFoundError, ValueError, OSError)),
    ("read_nanoaod", read_nanoaod, "txt", (ValueError, OSError)),
    ("read_nanoaod", read_nanoaod, "dir", (ValueError, OSError)),
]


def _values(p):
    return p.values if hasattr(p, "values") else p


@pytest.mark.parametrize("entry, reader, which, exc", READERS,
                         ids=[f"{_values(p)[0]}-{_values(p)[2]}" for p in READERS])
def test_readers_refuse_bad_files(files, entry, reader, which, exc):
    path = files[which]
    with _alarm(60), pytest.raises(exc) as info:
        reader(path)
    assert re.search(re.escape(path.name), str(info.value)), str(info.value)


@pytest.mark.parametrize("entry, thunk, exc, pattern", CASES)
def test_api_refuses(entry, thunk, exc, pattern):
    with _alarm(60), pytest.raises(exc) as info:
        thunk()
    assert re.search(pattern, str(info.value)), f"{type(info.value).__name__}: {info.value}"


# -- the CLI, in-process ---------------------------------------------------------------
CLI: list = []  # (argv, exit status, regex)


def cli_case(argv: list[str], status: int, pattern: str) -> None:
    CLI.append(pytest.param(argv, status, pattern, id=" ".join(argv)[:80]))


for cmd, extra in (("xsec", ["drell-yan"]), ("generate", ["drell-yan", "-o", "{tmp}/g.h5"]),
                   ("train", ["drell-yan", "--param", "mzp=1500:2500", "-o", "{tmp}/m"]),
                   ("scan", ["--data", "{garbage}", "--param", "mzp=1500:2500:5",
                             "-o", "{tmp}/s"]),
                   ("posterior", ["{missing}", "-o", "{tmp}/p.nc"]),
                   ("demo", ["-o", "{tmp}/d"])):
    cli_case([cmd, "--nosuchoption"], 2, "nosuchoption")
    cli_case([cmd, "--help-me"], 2, "help-me")
    if cmd != "xsec":
        for d in ("nosuchdevice", "cuda:99", "meta", *(["cuda"] if "cuda" in BAD_DEVICES
                                                        else [])):
            cli_case([cmd, *extra, "--device", d], 2, "--device")
    cli_case([cmd, *extra, "--seed", "-1"], 2, "--seed")
    cli_case([cmd, *extra, "--seed", "abc"], 2, "--seed")
for opt, values in (("--events", ["0", "1", "1e6", "1.5", "-3", "abc", "1" + "0" * 23]),
                    ("--batch-size", ["0", "1.5", "1e5"]),
                    ("--channel", ["-1", "99"]), ("--method", ["nosuch"]),
                    ("--max-hours", ["0", "-1", "abc"]), ("--set", ["mzp", "=1", "mzp=abc",
                                                                    "nosuch=1", "pdf=NOSUCHPDF",
                                                                    "sqrt_s=-1", "mll_min=nan"])):
    for v in values:
        status = 2
        cli_case(["xsec", "drell-yan", opt, v, "--events", "1000"] if opt != "--events"
                 else ["xsec", "drell-yan", opt, v], status,
                 re.escape(opt) + "|" + re.escape(v.split("=")[0] or "=") + "|mzp|sqrt_s|mll")
cli_case(["xsec", "nosuch"], 2, "nosuch")
cli_case(["xsec", "drell-yan", "--events", "1000000000000"], 2, r"--events .* hours")
cli_case(["xsec", "drell-yan", "--events", "1000000000000", "--batch-size", "1000000000000"], 2,
         r"--batch-size .* GiB")
cli_case(["xsec"], 2, "PROCESS")
for v in ("0", "1e23", "1.5", "100000000000000000000000"):
    cli_case(["generate", "drell-yan", "--events", v, "-o", "{tmp}/g.h5"], 2, "--events")
cli_case(["generate", "drell-yan", "--events", "100000000000", "-o", "{tmp}/g.h5"], 2,
         r"--events .* GiB")
cli_case(["generate", "drell-yan", "--events", "10", "--train-calls", "10", "-o",
          "{tmp}/g.h5"], 2, "--train-calls")
cli_case(["generate", "drell-yan", "--events", "10", "--overweight", "1.5", "-o",
          "{tmp}/g.h5"], 2, "--overweight")
cli_case(["generate", "nosuch", "--events", "10", "-o", "{tmp}/g.h5"], 2, "nosuch")
cli_case(["generate", "drell-yan", "--events", "10", "--set", "pdf=NOSUCHPDF", "-o",
          "{tmp}/g.h5"], 2, "NOSUCHPDF")
cli_case(["generate", "drell-yan", "--events", "10", "--detector", "nosuch", "-o",
          "{tmp}/g.h5"], 2, "nosuch")
cli_case(["generate", "drell-yan", "--events", "10"], 2, "output")
for opt, v in (("--steps", "1e23"), ("--steps", "100000000000000000000000"), ("--steps", "0"),
               ("--samples", "0"), ("--samples", "100000000000"), ("--warmup", "-1"),
               ("--chains", "0"), ("--chains", "100000"), ("--method", "nosuch"),
               ("--on-flagged", "nosuch"), ("--samples-per-event", "10"),
               ("--luminosity", "-1"), ("--prior", "mu=nosuch:1,2")):
    cli_case(["posterior", "{missing}", opt, v, "-o", "{tmp}/p.nc"], 2, re.escape(opt)
             + "|mu|prior|missing")
cli_case(["posterior", "{missing}", "-o", "{tmp}/p.nc"], 2, "missing")
cli_case(["posterior", "{garbage}", "--likelihood", "nosuch_module:make", "-o",
          "{tmp}/p.nc"], 2, "--likelihood|nosuch_module")
cli_case(["posterior", "{garbage}", "--likelihood", "x", "-o", "{tmp}/p.nc"], 2,
         "--likelihood")
cli_case(["posterior", "{garbage}", "--model", "{missing}", "-o", "{tmp}/p.nc"], 2, "--model")
for opt, v in (("--param", "mzp"), ("--param", "mzp=1:2"), ("--param", "mzp=2:1:5"),
               ("--param", "mzp=1:2:2"), ("--param", "mzp=a:b:5"), ("--param", "mzp=1:nan:5"),
               ("--batch-size", "0"), ("--batch-size", "10000000000"),
               ("--on-flagged", "nosuch"), ("--fix", "mzp"), ("--fix", "mzp=abc"),
               ("--profile", "=1:2"), ("--profile", "gzp=2:1"), ("--samples-per-event", "3")):
    cli_case(["scan", "--data", "{garbage}", "--likelihood", "nosuch:make", opt, v, "-o",
              "{tmp}/s"], 2, re.escape(opt) + "|mzp|gzp|--param|--likelihood")
cli_case(["scan", "--data", "{garbage}", "--param", "mzp=1500:2500:5", "-o", "{tmp}/s"], 2,
         "--model|--likelihood")
cli_case(["scan", "--data", "{missing}", "--likelihood", "m:f", "--param", "mzp=1500:2500:5",
          "-o", "{tmp}/s"], 2, "missing|--data")
cli_case(["scan", "--data", "{garbage}", "--likelihood", "{tmp}/nofile.py:make", "--param",
          "mzp=1500:2500:5", "-o", "{tmp}/s"], 2, "nofile")
for opt, v in (("--trials", "10"), ("--trials", "1e6"), ("--epochs", "0"),
               ("--points-per-axis", "0"), ("--param", "mzp=2:1"), ("--param", "nosuch=1:2"),
               ("--set", "nosuch=1"), ("--cut", "nosuch=1"), ("--detector", "nosuch")):
    cli_case(["train", "drell-yan", "--param", "mzp=1500:2500", opt, v, "-o", "{tmp}/m"], 2,
             re.escape(opt) + "|nosuch|mzp")
cli_case(["train", "nosuch", "-o", "{tmp}/m"], 2, "nosuch")
for opt, v in (("--experiments", "0"), ("--experiments", "1e3"), ("--seed", "-5")):
    cli_case(["demo", opt, v, "-o", "{tmp}/d"], 2, re.escape(opt))


@pytest.fixture(scope="module")
def cli_paths(tmp_path_factory, files):
    tmp = tmp_path_factory.mktemp("fuzz_cli")
    return {"tmp": str(tmp), "missing": str(tmp / "missing.h5"), "garbage": str(files["h5"])}


@pytest.mark.parametrize("argv, status, pattern", CLI)
def test_cli_refuses(argv, status, pattern, cli_paths, capsys):
    args = [a.format(**cli_paths) for a in argv]
    with _alarm(60), pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    text = out.out + out.err
    assert info.value.code == status, text
    assert "Traceback" not in text
    errors = [line for line in out.err.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, out.err
    assert re.search(pattern, errors[0]), errors[0]


def test_case_count():
    """At least 300 cases in all; the count per entry point is printed (``-s``)."""
    per = Counter(p.values[0] for p in CASES)
    per.update(_values(p)[0] for p in READERS)
    per.update(f"invsim {p.values[0][0]}" for p in CLI)
    for name, n in sorted(per.items()):
        print(f"{name:28s} {n:4d}")
    print(f"{'total':28s} {sum(per.values()):4d}")
    assert sum(per.values()) >= 300
