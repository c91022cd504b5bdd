"""Training on more than one process (lesson 14): data parallel and sharded training on torchrun
(`data_parallel.py`), each process's share of a batch (`batch.py`), a clip's tokens shared by processes
(`sequence.py`), checks against one process (`checks.py`) and a launcher for them from Python (`launch.py`)."""
