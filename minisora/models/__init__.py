"""Networks: embeddings, patches and attention (math, sdpa and the fused flash backend), the transformer block, U-ViT,
DiT, the video DiT and its caption encoder, the causal video VAE, Stable Diffusion's image VAE, the toy MLP and the
shapes classifier that judges samples."""
