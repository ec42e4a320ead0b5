"""The VLA model: backbones, action heads (registry), the shared transform pipeline, checkpoints, VLAPolicy."""
