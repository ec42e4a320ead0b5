"""RoboAlign training (Kim et al. 2026): SFT and GRPO of the MLLM on FAST action tokens, then the VLA head."""
