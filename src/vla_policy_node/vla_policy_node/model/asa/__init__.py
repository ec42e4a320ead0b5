"""Action-space adapters (Szot et al. 2024, "Grounding Multimodal LLMs in Actions") and action tokenizers
(Uniform, VQ/RVQ, FAST) as VLA action heads: each adapter registers itself (`model/head_registry.py`),
`build.build_asa_vla` makes a model, and the usual checkpoint, trainer and `VLAPolicy` do the rest (continuous
adapters: `infer -> ActionChunk`; discrete ones: `act`, e.g. through `DiscreteActionPolicy`)."""
