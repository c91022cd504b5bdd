"""How much memory a piece of work needs: measured here, estimated for a whole training configuration in the planner.

`measure_peak_memory` runs a function in a fresh Python process and reports how far the process's resident memory
rose while it ran: the honest number on a CPU, where PyTorch keeps no allocator statistics.
"""
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from typing import Callable


def _status_kilobytes(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", open("/proc/self/status").read()).group(1))


def _measure_in_this_process(path: str, name: str, arguments_json: str) -> None:
    """The child's side of `measure_peak_memory`: prepare, note the resident set, reset its high-water mark, run."""
    import torch

    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("_measured_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = getattr(module, name)(*json.loads(arguments_json))
    before = _status_kilobytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # Linux: reset VmHWM, the peak resident set, to the current one
    run()
    print(json.dumps({"peak_bytes": (_status_kilobytes("VmHWM") - before) * 1024}))


def measure_peak_memory(prepare: Callable, *arguments) -> int:
    """Bytes by which resident memory peaks while `prepare(*arguments)()` runs, above where it stood once `prepare`
    had built its inputs, measured in a fresh process (Linux only: it reads /proc). `prepare` must be a top-level
    function of a .py file; `arguments` must be JSON values. One-time costs (libraries loaded on first use, the
    autograd engine's threads) count unless `prepare` warms up on a small input first."""
    if not os.path.exists("/proc/self/clear_refs"):
        raise RuntimeError("measure_peak_memory reads Linux's /proc/self/status; on other systems use a GPU's "
                           "torch.cuda.max_memory_allocated instead")
    code = (f"from minisora.memory import _measure_in_this_process; "
            f"_measure_in_this_process({inspect.getfile(prepare)!r}, {prepare.__name__!r}, {json.dumps(arguments)!r})")
    # a fixed mmap threshold makes glibc return every freed block of 64 KiB or more to the system at once, so the
    # resident set follows the live tensors instead of keeping freed memory for reuse
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536",
                   "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {prepare.__name__}{tuple(arguments)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"]
