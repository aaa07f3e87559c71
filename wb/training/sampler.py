"""One seeded, DDP-sharded epoch sampler for every training and validation loader."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def dist_rank_world() -> tuple[int, int]:
    """``(rank, world size)`` from ``torch.distributed`` when initialised, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochSampler(Sampler):
    """Indices of one epoch: seeded order, sharded across DDP ranks, optionally epoch-tagged.

    The order depends only on ``(seed, epoch)`` (a NumPy permutation when ``shuffle``, else
    ``0..n-1``); Lightning calls :meth:`set_epoch` before every epoch, also after a resume, so a
    resumed run sees exactly the order an uninterrupted one would. Like
    :class:`torch.utils.data.DistributedSampler`, the order is padded to
    ``ceil(n / world) * world`` by wrapping around to its start and rank ``r`` takes every
    ``world``-th item from position ``r``, so every rank yields the same number of items
    (unequal batch counts would deadlock DDP).

    Args:
        n: items per epoch over all ranks.
        seed: seed of the permutation (used only when ``shuffle``).
        shuffle: permute (training) or keep ``0..n-1`` (validation, per-item seeded draws).
        with_epoch: yield ``(index, epoch)`` pairs, so a dataset can seed per-item randomness
            by epoch (``np.random.default_rng([seed, epoch, index])``); else plain indices.
        rank, world: this process's rank and the number of processes (default: from
            ``torch.distributed`` when initialised, else ``0, 1``), read at iteration time.

    Raises:
        ValueError: ``n < 0``, or a rank outside ``0..world-1``.
    """

    def __init__(
        self,
        n: int,
        seed: int = 0,
        shuffle: bool = False,
        with_epoch: bool = True,
        rank: int | None = None,
        world: int | None = None,
    ) -> None:
        if int(n) < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.seed, self.shuffle, self.with_epoch = int(n), int(seed), shuffle, with_epoch
        self._rank, self._world = rank, world
        self.epoch = 0

    def rank_world(self) -> tuple[int, int]:
        """The ``(rank, world)`` in effect."""
        rank, world = dist_rank_world()
        rank = rank if self._rank is None else int(self._rank)
        world = world if self._world is None else int(self._world)
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside 0..{world - 1}")
        return rank, world

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order (and tags) :meth:`__iter__` yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.n / self.rank_world()[1])

    def __iter__(self) -> Iterator:
        rank, world = self.rank_world()
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        order = np.resize(order, len(self) * world)[rank::world] if self.n else order
        if self.with_epoch:
            return iter([(int(i), self.epoch) for i in order])
        return iter([int(i) for i in order])
