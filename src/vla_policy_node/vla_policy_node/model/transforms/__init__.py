"""The one transform pipeline between data and model, shared by training and serving (openpi's `transforms.py`,
LeRobot's saved processors): `pipeline.TransformPipeline`, built once from a checkpoint's config."""
