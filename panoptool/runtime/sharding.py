"""Several processes or machines (``torchrun``) sharing one list of inputs.

``torchrun --nproc-per-node N [--nnodes M ...] -m panoptool_cli.main infer ...`` starts N*M
processes with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` in their
environment. Each takes every ``WORLD_SIZE``-th input starting at its ``RANK``
(:meth:`Shard.take`), so every input is processed by exactly one process whatever the
order in which they finish; barriers of a gloo process group (CPU, works beside CUDA too)
order the steps that must happen once (clean-up before, ``config.json`` after).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from panoptool.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` processes (``local_*``: on this machine).

    >>> Shard(rank=1, world=3).take(list("abcdefg"))
    ['b', 'e']
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    def __post_init__(self):
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ConfigError(f"RANK must be in 0..WORLD_SIZE-1, got RANK={self.rank}, "
                              f"WORLD_SIZE={self.world}")
        if self.local_world < 1 or not 0 <= self.local_rank < self.local_world:
            raise ConfigError(f"LOCAL_RANK must be in 0..LOCAL_WORLD_SIZE-1, got "
                              f"{self.local_rank} of {self.local_world}")

    @property
    def main(self) -> bool:
        """True on the process that writes the shared files (rank 0)."""
        return self.rank == 0

    def take(self, items: Sequence[T]) -> list[T]:
        """This process's share of ``items``: ``items[rank::world]``."""
        return list(items[self.rank::self.world])


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard:
    """The :class:`Shard` torchrun's variables describe; one process when they are unset.

    >>> shard_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
    ...                 "LOCAL_WORLD_SIZE": "2"})
    Shard(rank=3, world=4, local_rank=1, local_world=2)
    >>> shard_from_env({})
    Shard(rank=0, world=1, local_rank=0, local_world=1)
    """
    env = os.environ if env is None else env

    def get(name: str, default: int) -> int:
        value = env.get(name, "")
        if value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"environment variable {name} must be an integer, "
                              f"got {value!r}") from None

    world = get("WORLD_SIZE", 1)
    local_world = get("LOCAL_WORLD_SIZE", 1 if world == 1 else world)
    return Shard(rank=get("RANK", 0), world=world, local_rank=get("LOCAL_RANK", 0),
                 local_world=local_world)


@contextlib.contextmanager
def process_group(shard: Shard, timeout_s: float = 1800.0) -> Iterator[Callable[[], None]]:
    """Join a gloo process group when ``shard.world > 1``; yield a ``barrier()`` function
    (a no-op for one process). A group this function created is destroyed on exit."""
    if shard.world == 1:
        yield lambda: None
        return
    import torch.distributed as tdist

    created = not tdist.is_initialized()
    if created:
        tdist.init_process_group("gloo", rank=shard.rank, world_size=shard.world,
                                 timeout=datetime.timedelta(seconds=timeout_s))
    group = tdist.new_group(backend="gloo") if tdist.get_backend() != "gloo" else None
    try:
        yield lambda: tdist.barrier(group=group)
    finally:
        if created:
            tdist.destroy_process_group()
