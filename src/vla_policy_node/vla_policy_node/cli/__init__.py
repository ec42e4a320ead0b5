"""Command-line entry points that are not nodes: vla_demo, vla_train, roboalign_*, action-tokenizer training."""
