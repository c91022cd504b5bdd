"""Run a function on N connected processes from Python (a notebook, a test), as torchrun would from a shell: each a
fresh interpreter with one CPU thread, joined in a gloo process group over the loopback interface, its return
value sent back. An error in any process is raised here with that process's traceback."""
import os
import queue
import socket
import time
import traceback
from typing import Any, Callable, List

import torch
import torch.distributed as dist
import torch.multiprocessing as multiprocessing


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _process(rank: int, world_size: int, port: int, function: Callable, arguments: tuple, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        results.put((rank, True, function(*arguments)))
    except Exception:
        results.put((rank, False, traceback.format_exc()))
    finally:
        dist.destroy_process_group()


def run_on_processes(function: Callable, world_size: int, *arguments, timeout: float = 120.0) -> List[Any]:
    """[function(*arguments) on process 0, ..., on process world_size - 1], each process in the group. `function`
    must be importable (a module's top-level function) and its arguments and result picklable."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    context = multiprocessing.get_context("spawn")
    results, port = context.Queue(), free_port()
    processes = [context.Process(target=_process, args=(rank, world_size, port, function, arguments, results))
                 for rank in range(world_size)]
    for process in processes:
        process.start()
    answers, deadline = {}, time.monotonic() + timeout
    while len(answers) < world_size and time.monotonic() < deadline:
        try:  # read as they come: a process cannot exit while its answer waits in the pipe
            rank, ok, value = results.get(timeout=0.5)
            answers[rank] = (ok, value)
        except queue.Empty:
            if any(process.exitcode not in (None, 0) and rank not in answers
                   for rank, process in enumerate(processes)):
                break  # one died without answering (killed, or crashed outside the function)
    for process in processes:
        process.join(max(1.0, deadline - time.monotonic()))
    alive = [rank for rank, process in enumerate(processes) if process.is_alive()]
    for rank in alive:
        processes[rank].kill()
    failed = [f"process {rank}:\n{value}" for rank, (ok, value) in sorted(answers.items()) if not ok]
    if failed:
        raise RuntimeError(f"{function.__name__} failed on {len(failed)} of {world_size} processes:\n"
                           + "\n".join(failed))
    if alive or len(answers) < world_size:
        raise RuntimeError(f"{function.__name__} did not finish on every process within {timeout:.0f} s (still "
                           f"running: {alive}; exit codes {[process.exitcode for process in processes]})")
    return [answers[rank][1] for rank in range(world_size)]
