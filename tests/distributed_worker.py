"""Started by tests under torchrun: trains a text-to-video run as `minisora train` does, with one process dying.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py DIE_RANK DIE_STEP \
        --key=value ...

Process DIE_RANK raises as it starts step DIE_STEP + 1 of the main run (after the checkpoint of step DIE_STEP, when
checkpoint_every divides it): what a crashed or killed process leaves behind."""
import sys

from minisora.config import apply_overrides
from minisora.train import video
from minisora.video_config import VideoConfig


class Died(RuntimeError):
    pass


def main():
    die_rank, die_step = int(sys.argv[1]), int(sys.argv[2])
    config = apply_overrides(VideoConfig(), sys.argv[3:])
    original = video.batch_loss

    def dying(config, *arguments, shard=None, **times):
        loss_of_batch, calls = original(config, *arguments, shard=shard, **times), []

        def loss(generator):
            rank = shard.rank if shard is not None else 0
            if rank == die_rank and "max_time" not in times and len(calls) == die_step * config.accumulation:
                raise Died(f"process {die_rank} died at step {die_step + 1}")
            calls.append(generator)
            return loss_of_batch(generator)
        return loss

    video.batch_loss = dying
    video.run_video(config, progress=False)


if __name__ == "__main__":
    main()
