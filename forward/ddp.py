"""Data-parallel training with ``torch.distributed``: gloo on CPUs, NCCL on GPUs.

The trainers of invsim (:func:`invsim.flows.training.fit_module`, which trains the
transfer, acceptance and unfolding flows, and :class:`forward.nis.training.Trainer`, the
NIS proposals) switch to data-parallel training when they run in a process group of
more than one process, e.g. launched with ``torchrun``::

    torchrun --standalone --nproc-per-node 2 my_training.py

where the script calls :func:`init_from_env` first. Every process holds the whole
model; the parameters are broadcast from rank 0 at the start and after every backward
pass the gradients are summed over the processes (:func:`all_reduce_gradients`), as
``DistributedDataParallel`` does (the models are trained through methods other than
``forward``, which DDP's wrapper needs, so the reduction is called explicitly). Outside
a process group, or in a group of one, nothing changes: the single-process path is the
same code with these calls skipped.
"""

from __future__ import annotations

import os

import torch

__all__ = [
    "all_reduce_gradients",
    "all_reduce_sum",
    "broadcast_module",
    "init_from_env",
    "is_main_process",
    "world",
]


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0 (and outside a process group): the process that writes files."""
    return world()[0] == 0


def init_from_env(backend: str | None = None) -> torch.device:
    """Join the process group that ``torchrun`` describes in the environment.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
    (set by ``torchrun``). Without ``WORLD_SIZE`` (a plain ``python`` run) nothing is
    initialised.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default NCCL when CUDA is available, gloo
            otherwise.

    Returns:
        The device of this process: ``cuda:LOCAL_RANK`` (made current) with NCCL, the CPU
        with gloo.

    Raises:
        ValueError: an unknown backend, or NCCL without CUDA.
    """
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend: expected 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl" and not cuda:
        raise ValueError("backend: 'nccl' needs CUDA; use 'gloo' on CPUs")
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if "WORLD_SIZE" in os.environ and not dist.is_initialized():
        dist.init_process_group(backend)
    return device


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process (no-op outside a group)."""
    if world()[1] == 1:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, 0)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The sum of ``values`` over the processes (a new tensor; ``values`` outside a group)."""
    if world()[1] == 1:
        return values
    import torch.distributed as dist

    out = values.detach().clone()
    dist.all_reduce(out)
    return out


def all_reduce_gradients(params, *, average: bool = False) -> None:
    """Sum (or average) the ``.grad`` of ``params`` over the processes, in place.

    The gradients go through one flat buffer per dtype; a parameter without a gradient
    on this process contributes zeros (and receives the others' sum).

    Args:
        params: the trainable parameters, in the same order on every process.
        average: divide by the world size (gradients of per-process means).
    """
    _, size = world()
    if size == 1:
        return
    import torch.distributed as dist

    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict = {}
    for p in params:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat)
        if average:
            flat /= size
        i = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[i: i + n].view_as(p.grad))
            i += n
