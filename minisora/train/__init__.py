"""Training: the toy 2D trainer of the diffusion lessons (the full video trainer grows from it)."""
