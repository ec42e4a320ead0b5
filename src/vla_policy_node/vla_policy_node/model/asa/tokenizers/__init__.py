"""Action tokenizers: Uniform bins, (residual) VQ-VAE codes, FAST (DCT + BPE)."""
