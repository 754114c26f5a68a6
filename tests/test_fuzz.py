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
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from forward._validation import check_count, make_generator, resolve_device
from forward.detector import Detector, get_detector
from forward.integrand import HadronicIntegrand
from forward.io import load_hdf5, read_events, read_lhe
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
                  ("fixed", {"nosuch": 1.0}, ValueError)):
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
