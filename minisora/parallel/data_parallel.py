"""Data parallel training on PyTorch's own engine: torchrun starts the processes, torch.distributed connects them,
and either DistributedDataParallel (Li et al. 2020) all-reduces the gradients or FSDP2 (`fully_shard`; Zhao et al.
2023, after ZeRO, Rajbhandari et al. 2020) shards the weights, gradients and optimizer state.

    torchrun --standalone --nproc_per_node=2 -m minisora train --preset tiny [--parallel=fsdp]

Every process trains on its share of every batch (`batch.py`: every process draws the whole batch and keeps its
rows), so a run on N processes trains the model one process trains, to float rounding.
- ddp: each process holds the whole model, the optimizer's state and the EMA. DDP averages the gradients during
  the backward pass, bucket by bucket, so every process takes the same optimizer step and the copies never part.
- fsdp: each process holds 1/N of every weight (rows of each matrix, `Shard(0)`: DTensors), of its gradient, of
  the optimizer's state and of the EMA. Each transformer block, and then the rest of the network, is a unit
  gathered whole (all-gather) just before it runs forward and again backward, and freed after; the gradients are
  reduce-scattered, each process keeping the mean of its rows, and the optimizer steps on its rows (Muon's
  Newton-Schulz works on whole matrices: DTensor gathers them for it).
Checkpoints hold whole tensors either way (gathered from the shards on every process; written by process 0), the
same file a one-process run writes, so a run saved by N processes resumes on any number. Process 0 alone shows
progress, writes metrics, checkpoints and model.pt, samples and scores; the others train and stop.

On CPUs the processes talk over gloo, on GPUs over NCCL (one GPU a process, `LOCAL_RANK`); torchrun gives each
process RANK, WORLD_SIZE and LOCAL_RANK in its environment and OMP_NUM_THREADS=1.
"""
import contextlib
import gc
import os
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

from .batch import BatchShard
from .sequence import SequenceSharding

PARALLEL_MODES = ("ddp", "fsdp")  # how torchrun's processes share the training


def check_parallel_mode(mode: str) -> str:
    if mode not in PARALLEL_MODES:
        raise ValueError(f"parallel must be one of {PARALLEL_MODES}, got {mode!r}")
    return mode


def world_size_from_environment() -> int:
    """How many processes torchrun started (1 when run without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class DataParallel:
    """The processes of one training run and how they share it; `start` makes one."""
    rank: int  # this process, 0 to world_size - 1
    world_size: int  # processes
    device: torch.device  # this process's device
    mode: str = "ddp"  # PARALLEL_MODES
    sequence: Optional[SequenceSharding] = None  # set when groups of processes share each clip's tokens
    wrapped: Optional[nn.Module] = None  # the network as the processes train it (set by `wrap`)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> Optional[BatchShard]:
        """This process's share of every batch: its rows, or under sequence parallelism its group's rows (the
        processes of a group share each clip's tokens instead); None when one group holds every process."""
        parts = 1 if self.sequence is None else self.sequence.parts
        groups = self.world_size // parts
        return None if groups == 1 else BatchShard(self.rank // parts, groups)

    def wrap(self, network: nn.Module) -> nn.Module:
        """The network as every process trains it: under DDP a wrapper that all-reduces gradients as the backward
        pass makes them; under FSDP the network itself, sharded in place (`shard_weights`)."""
        network.sequence = self.sequence  # the network shares its tokens (models/video_dit.py)
        if self.mode == "fsdp":
            self.wrapped = self.shard_weights(network)
            return network
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # gradients as views into the all-reduce buckets: no second copy of them (minisora.memory plans it so)
        self.wrapped = nn.parallel.DistributedDataParallel(network, device_ids=device_ids,
                                                           gradient_as_bucket_view=True)
        return self.wrapped

    def view(self, model: nn.Module, network_of: Callable[[nn.Module], nn.Module] = lambda model: model,
             around: Callable[[nn.Module, nn.Module], nn.Module] = lambda model, network: network
             ) -> Tuple[nn.Module, Optional[nn.Module]]:
        """(`model` as this process trains it, the EMA copy train_loop needs or None). `network_of(model)` is the
        network inside a wrapper (a denoiser's), `around(model, network)` the wrapper around another network. Under
        DDP: the wrapper around the network in DDP, sharing the model's parameters, and None (train_loop copies
        the model); under FSDP: the model itself, its network sharded in place, and an EMA copied before sharding
        and sharded alike (an FSDP module refuses deepcopy)."""
        from ..train.ema import make_ema

        if self.mode == "fsdp":
            ema = make_ema(model)
            self.shard_weights(network_of(ema))
            self.wrap(network_of(model))
            return model, ema
        return around(model, self.wrap(network_of(model))), None

    def shard_weights(self, network: nn.Module) -> nn.Module:
        """FSDP2 in place: each transformer block a unit gathered whole when it runs, the rest of the network one
        more (the embeddings, the caption encoder, the final layer; all of a network without `blocks`); weights
        become DTensors of 1/N of the rows."""
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(self.device.type, (self.world_size,))  # named: gloo must not wander to a GPU
        for block in getattr(network, "blocks", ()):  # a network without blocks is one unit
            fully_shard(block, mesh=mesh)
        fully_shard(network, mesh=mesh)
        return network

    @contextlib.contextmanager
    def skip_gradient_sync(self):
        """A context for the micro-batches of an accumulated step but its last: gradients add up locally, and one
        all-reduce (DDP's no_sync) or reduce-scatter (FSDP's set_requires_gradient_sync) at the last micro-batch
        averages the sum."""
        if self.wrapped is None:
            yield
        elif self.mode == "fsdp":
            self.wrapped.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                self.wrapped.set_requires_gradient_sync(True)
        else:
            with self.wrapped.no_sync():
                yield

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """The mean over the processes of a tensor each holds (a loss: each process's part of the whole batch's)."""
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def barrier(self) -> None:
        dist.barrier()


def whole(state):
    """A state dict (or optimizer state, nested) with every DTensor gathered into the whole tensor: on every process
    (a collective: all call it, in the same order). Anything else as it is."""
    if isinstance(state, DTensor):
        return state.full_tensor()
    if isinstance(state, dict):
        return {key: whole(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(whole(value) for value in state)
    return state


def shard_like(full: torch.Tensor, like) -> torch.Tensor:
    """`full` cut as `like` is (this process's rows, a DTensor) when `like` is a DTensor; `full` itself otherwise."""
    if isinstance(like, DTensor) and isinstance(full, torch.Tensor) and not isinstance(full, DTensor):
        return distribute_tensor(full.to(like.dtype), like.device_mesh, like.placements)
    return full


def load_whole_state(module: nn.Module, state: dict) -> None:
    """Load a state dict of whole tensors into a module, sharded or not."""
    current = module.state_dict()
    module.load_state_dict({name: shard_like(value, current.get(name)) for name, value in state.items()})


def unsharded(module: nn.Module, make_plain: Callable[[], nn.Module]) -> nn.Module:
    """A trained EMA `module` as one process samples it: its networks no longer share their tokens, and its weights
    whole on every process — itself when it holds no shards, else `make_plain()` (an unsharded module of the same
    architecture) loaded with its gathered weights, in eval mode and frozen as the EMA it was."""
    for part in module.modules():
        if getattr(part, "sequence", None) is not None:
            part.sequence = None  # the sharing was the training processes' (models/video_dit.py)
    if not any(isinstance(parameter, DTensor) for parameter in module.parameters()):
        return module
    plain = make_plain()
    plain.load_state_dict(whole(module.state_dict()))
    return plain.eval().requires_grad_(False)


def load_whole_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load an optimizer state of whole tensors (`whole(optimizer.state_dict())`) into an optimizer whose
    parameters may be sharded: each of their per-parameter tensors cut as the parameter is."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            held = optimizer.state.get(parameter, {})
            for name, value in held.items():
                if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
                    held[name] = shard_like(value, parameter)


def start(mode: str, device: str, sequence_parallel: int = 1, sequence_method: str = "ulysses"
          ) -> Optional[DataParallel]:
    """Join the processes torchrun started (None when it started one, or none): gloo on CPUs, NCCL on GPUs; each
    process on GPU LOCAL_RANK. With sequence_parallel = P > 1, each group of P consecutive processes shares the
    tokens of its clips (`sequence.SequenceSharding`, by `sequence_method`), and the groups share the batch (a 2D
    mesh: world = groups x P; DDP or FSDP over every process). A mode, device or sharing that cannot be used is a
    clear error before any work."""
    world_size = world_size_from_environment()
    check_parallel_mode(mode)
    if sequence_parallel != 1 and world_size % sequence_parallel:
        raise ValueError(f"sequence_parallel={sequence_parallel} shares each clip's tokens among groups of that many "
                         f"processes: start a multiple of it (torchrun --nproc_per_node={sequence_parallel} or "
                         f"{2 * sequence_parallel}, ...; now {world_size}), or leave sequence_parallel=1")
    if world_size == 1:
        return None
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {rank} wants GPU {local_rank}, but this machine has "
                             f"{torch.cuda.device_count()}; start at most that many processes a machine "
                             f"(--nproc_per_node)")
        torch.cuda.set_device(local_rank)
        backend, place = "nccl", torch.device("cuda", local_rank)
    else:
        backend, place = "gloo", torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend)
    sequence = None
    if sequence_parallel > 1:
        group = None  # every process shares each clip's tokens
        if sequence_parallel < world_size:  # every process makes every group, in the same order
            groups = [dist.new_group(list(range(first, first + sequence_parallel)))
                      for first in range(0, world_size, sequence_parallel)]
            group = groups[rank // sequence_parallel]
        sequence = SequenceSharding(sequence_method, group)
    return DataParallel(rank, world_size, place, mode, sequence)


def finish(parallel: Optional[DataParallel]) -> None:
    """Leave the process group (see leave_group) when this run started one."""
    if parallel is not None:
        leave_group()


def leave_group() -> None:
    """Leave the process group, all processes together: a process that left while another still had gloo traffic
    with it could end in std::terminate ("terminate called without an active exception")."""
    if dist.is_initialized():
        gc.collect()  # sharded modules no longer used (FSDP's hooks hold them in cycles) go while the group lives
        dist.barrier()
        dist.destroy_process_group()
