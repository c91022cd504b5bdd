"""Networks: embeddings, the toy MLP, and (in later lessons) the transformers and the video VAE."""
