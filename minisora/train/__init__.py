"""Training: one loop (loop.py: optimizer, warmup, EMA, accumulation, clipping, mixed precision, resumable
checkpoints) shared by the trainers of the toy 2D sets, the shapes images, the video VAE and text-to-video, with
their objectives, configurations and data."""
