"""Data-parallel training on ``torch.distributed``: the glue between the training loop and
``torchrun`` (ranks, process group, sharded evaluation, agreement between ranks).

Started by ``torchrun --nproc-per-node N [--nnodes M ...] -m difflogic train ...``, every rank
builds the same network from the same seed, draws the same global batch and trains on its
contiguous share of it (:attr:`difflogic.data.BatchLoader.shard`); DistributedDataParallel
averages the gradients, so a step of N ranks is the step of one process on the whole batch,
to float rounding (the gradient sums are added in another order).  ``--batch-size`` is the
global batch and the learning rate means what it means in one process.  Evaluations are
sharded and their counts summed, so every rank sees the same accuracies and agrees on the best
step; only rank 0 writes files.  Without ``torchrun`` (no ``WORLD_SIZE`` in the environment)
the world is one process and nothing here talks to anyone.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .runtime import log

#: Seconds a collective waits for a silent peer before failing (a killed rank's peers usually
#: fail at once, on the closed connection; this bounds the wait when a whole host goes away).
TIMEOUT_S = float(os.environ.get("DIFFLOGIC_DIST_TIMEOUT", "300"))


class DistributedError(RuntimeError):
    """The ranks of a job cannot work together (different settings, a lost peer)."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` ranks, ``local_rank`` of
    ``local_size`` on this machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def sum(self, values: list, device=None) -> list:
        """Element-wise sum of ``values`` (numbers) over the ranks (float64 on the wire)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        _collective(dist.all_reduce, t)
        return t.tolist()

    def any(self, flag: bool, device=None) -> bool:
        """True on every rank if it is True on any rank (a stop request, say)."""
        return bool(self.sum([1.0 if flag else 0.0], device)[0]) if self.active else flag

    def barrier(self) -> None:
        if self.active:
            _collective(dist.barrier)

    def shard(self, indices):
        """This rank's share of ``indices`` (every ``size``-th, from ``rank``)."""
        return indices[self.rank::self.size] if self.active else indices


def env_world() -> World:
    """The world ``torchrun`` describes in the environment (one process without it)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(size)))
    except ValueError as e:
        raise ValueError(f"WORLD_SIZE / RANK / LOCAL_RANK must be integers ({e}); start "
                         "distributed runs with torchrun") from None
    if size < 1 or not 0 <= rank < size or not 0 <= local_rank < local_size:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={size} "
                         f"LOCAL_RANK={local_rank} LOCAL_WORLD_SIZE={local_size}")
    return World(rank, size, local_rank, local_size)


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group (gloo for CPU tensors, NCCL for CUDA, one GPU per local rank);
    returns the device this rank computes on."""
    if not world.active:
        return device
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise DistributedError("WORLD_SIZE > 1 but no rendezvous (MASTER_ADDR / MASTER_PORT); "
                               "start distributed runs with torchrun --nproc-per-node N "
                               "[--nnodes M --rdzv-endpoint HOST:PORT]")
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kw = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=TIMEOUT_S), **kw)
    return device


#: Seconds :func:`stop` waits for the process group to shut down before the process exits
#: anyway (a teardown that waits on a vanished peer must not keep a finished job alive).
STOP_TIMEOUT_S = 30.0


def stop() -> None:
    """Leave the process group, waiting at most :data:`STOP_TIMEOUT_S` for its teardown."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    done = threading.Thread(target=dist.destroy_process_group, daemon=True)
    done.start()
    done.join(STOP_TIMEOUT_S)
    if done.is_alive():
        log(f"difflogic train: the process group did not shut down within {STOP_TIMEOUT_S:g} s; "
            "exiting without it")


def check_same(world: World, what: str, value) -> None:
    """Refuse ranks that disagree on ``value`` (their settings, their data): each rank hashes
    its own and the hashes must all equal rank 0's."""
    if not world.active:
        return
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).digest()
    mine = torch.tensor(list(digest[:8]), dtype=torch.float64)
    ref = mine.clone()
    _collective(dist.broadcast, ref, 0)
    differs = torch.tensor([0.0 if torch.equal(mine, ref) else 1.0], dtype=torch.float64)
    _collective(dist.all_reduce, differs)
    if differs.item():
        raise DistributedError(f"the ranks were started with different {what}: start every "
                               "rank with the same command, data and files")


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The module the training step calls: DistributedDataParallel over ``model`` when there
    are several ranks (it averages the gradients during backward), else ``model`` itself."""
    if not world.active:
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [device.index] if device.type == "cuda" else None
    # the buffers (the wiring) are equal on every rank and never change: no per-step sync
    return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)


def _collective(fn, *args):
    try:
        return fn(*args)
    except (RuntimeError, dist.DistBackendError) as e:
        raise DistributedError(f"rank {dist.get_rank()}: lost contact with the other ranks "
                               f"({str(e).splitlines()[0][:200]}); another rank has probably "
                               "failed: see its error above") from None
