"""Action-space adapters (Szot et al. 2024, "Grounding Multimodal LLMs in Actions") and action tokenizers
(Uniform, VQ/RVQ, FAST) as VLA action heads: `build.build_asa_vla` makes a model, the usual checkpoint, trainer and
`VLAPolicy.infer` do the rest; discrete adapters act through `policy.DiscreteActionPolicy`."""
