"""Stochastic APIs are reproducible from their generator or seed alone (issue 18, item 5).

Every network a stochastic API builds takes its initial weights from the API's
generator or seed (:func:`forward.seeding.seeded_init`), never from torch's global
random state: two fresh processes give bit-identical results, a process whose global
state was advanced first gives the same result as one where it was not, and the
caller's global state is left as it was.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from forward.nis import NISConfig, fit
from forward.nis.toys import camel
from forward.seeding import seed_from, seeded_init

ROOT = Path(__file__).resolve().parents[1]

#: fit on a 2D camel with a small budget, then an integral; prints a digest of the
#: flow's weights and the integral's repr (every bit of it); then builds an invsim
#: conditional flow from a seed and prints a digest of its initial weights
_FIT = """
import hashlib, sys, torch
from forward.nis import NISConfig, fit, integrate
from forward.nis.toys import camel
if len(sys.argv) > 1:
    torch.manual_seed(int(sys.argv[1]))      # a different global state in this process
    torch.rand(17)
cfg = NISConfig(calls=5000, batch_size=256)
res = fit(camel(2), 2, cfg, generator=torch.Generator().manual_seed(11))
h = hashlib.sha256()
for k, v in sorted(res.proposal.state_dict().items()):
    h.update(k.encode())
    h.update(v.detach().cpu().contiguous().numpy().tobytes() if torch.is_tensor(v)
             else repr(v).encode())
r = integrate(camel(2), res.proposal, 2000, generator=torch.Generator().manual_seed(3))
print(h.hexdigest(), repr(r.value), repr(r.error))
# the invsim networks: a conditional flow built from a seed
from invsim.flows import ConditionalFlow, FlowConfig
from invsim.flows.preprocessing import observable_preprocessing
pre = observable_preprocessing(["real", "real"])
flow = ConditionalFlow(pre, observable_preprocessing(["real"]), FlowConfig(), seed=4)
h = hashlib.sha256()
for k, v in sorted(flow.state_dict().items()):
    h.update(k.encode())
    h.update(v.detach().cpu().contiguous().numpy().tobytes() if torch.is_tensor(v)
             else repr(v).encode())
print(h.hexdigest())
"""

def _run(code: str, *args: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_fit_and_builders_bit_identical_across_processes_and_global_states():
    a = _run(_FIT)
    b = _run(_FIT, "12345")  # another process, its global RNG advanced otherwise
    assert a == b, (a, b)


def test_fit_leaves_global_rng_untouched_and_depends_on_generator():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    cfg = NISConfig(calls=5000, batch_size=256)
    r1 = fit(camel(2), 2, cfg, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), before)
    r2 = fit(camel(2), 2, cfg, generator=torch.Generator().manual_seed(2))
    w1 = torch.cat([p.detach().flatten() for p in r1.proposal.parameters()])
    w2 = torch.cat([p.detach().flatten() for p in r2.proposal.parameters()])
    assert not torch.equal(w1, w2)  # another generator, other weights


def test_seeded_init_rules():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with seeded_init(7):
        a = torch.nn.Linear(3, 2).weight.detach().clone()
    with seeded_init(7):
        b = torch.nn.Linear(3, 2).weight.detach().clone()
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert seed_from(g1) == seed_from(g2)
    with pytest.raises(TypeError, match="seed"):
        with seeded_init(1.5):
            pass
    with pytest.raises(ValueError, match="seed"):
        with seeded_init(-1):
            pass
    with pytest.raises(TypeError, match="generator"):
        seed_from(3)

