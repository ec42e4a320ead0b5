"""The fast path gives the eager path's results: device preprocessing equals the host chain (fit_image, then the
family's processor) to one 8-bit step, SDPA equals eager attention, and the compiled backbone and the captured
denoising loop equal their eager runs, for every backbone family (tiny configs on CPU; compilation is slow on a
shared CPU, so those tests are marked slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla_policy_node.model.fast_path import FastPath, FastPathConfig
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.spec.images import fit_image

FAMILIES = ("qwen2_5_vl", "qwen3_vl", "paligemma", "idefics3", "smolvlm")
INSTRUCTION = "pick up the red block"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(family: str, franka):
    torch.manual_seed(0)
    return build_tiny_vla([franka], family=family).eval()


def _frames(seed: int = 0, shape=(480, 640, 3)) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(2)]]


@pytest.mark.parametrize("family", FAMILIES)
def test_device_preprocessing_equals_fit_image_then_the_processor(family, franka):
    model = _model(family, franka)
    native = _frames()
    cams = franka.cameras
    fitted = [[fit_image(frame, cam) for frame, cam in zip(native[0], cams, strict=True)]]
    host = model.backbone.prepare(fitted, [INSTRUCTION])
    fast = FastPath(model, FastPathConfig(device_preprocess=True, attention=None))
    device = fast.prepare(native, [INSTRUCTION], [(c.height, c.width) for c in cams])
    assert fast.device_preprocess_active == (family in ("qwen2_5_vl", "qwen3_vl", "paligemma"))
    assert set(device) == set(host)
    for key in host:
        if key != "pixel_values":
            assert torch.equal(device[key], host[key]), key
    diff = (device["pixel_values"] - host["pixel_values"]).abs()
    one_step = 1 / 255 / min(model.backbone.processor.image_processor.image_std)  # one 8-bit level, normalized
    assert diff.max().item() <= one_step + 1e-6  # PIL rounds to uint8 twice; so do we, rarely on the other side
    assert diff.mean().item() < 0.2 * one_step
    again = fast.prepare(_frames(seed=1), [INSTRUCTION], [(c.height, c.width) for c in cams])  # cached tokens,
    assert not torch.equal(again["pixel_values"], device["pixel_values"])                       # fresh pixels


@pytest.mark.parametrize("family", FAMILIES)
def test_sdpa_attention_equals_eager_attention(family, franka):
    model = _model(family, franka)
    inputs = model.backbone.prepare(_frames(shape=(224, 224, 3)), [INSTRUCTION])
    FastPath(model, FastPathConfig(device_preprocess=False, attention="eager"))
    with torch.inference_mode():
        eager, mask = model.backbone(inputs)
    FastPath(model, FastPathConfig(device_preprocess=False, attention="sdpa"))
    with torch.inference_mode():
        sdpa, _ = model.backbone(inputs)
    assert mask.any()
    torch.testing.assert_close(sdpa, eager, rtol=1e-4, atol=1e-5)


def _context(model, franka):
    inputs = model.backbone.prepare(_frames(shape=(224, 224, 3)), [INSTRUCTION])
    state = torch.zeros(1, model.config.head.max_state_dim)
    category = torch.zeros(1, dtype=torch.long)
    with torch.inference_mode():
        return inputs, model.head.encode(model.backbone, inputs, state, category), state, category


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_compiled_backbone_equals_eager(family, franka):
    """The compiled graph (dynamo + AOTAutograd, the trace inductor compiles) gives the eager features."""
    model = _model(family, franka)
    inputs, ctx, state, category = _context(model, franka)
    FastPath(model, FastPathConfig(device_preprocess=False, attention=None, compile_backbone=True,
                                   compile_backend="aot_eager"))
    with torch.inference_mode():
        compiled = model.head.encode(model.backbone, inputs, state, category)
    torch.testing.assert_close(compiled.features, ctx.features, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_captured_denoising_loop_equals_eager_with_inductor(franka):
    """Inductor on CPU (gcc): the whole Euler loop as one generated graph, with and without an RTC prefix, gives
    the eager chunk for the same noise (the backbone's trace is checked per family above)."""
    model = _model("qwen2_5_vl", franka)
    _, ctx, _, _ = _context(model, franka)
    head = model.head
    cfg = head.config
    prefix = torch.linspace(-1, 1, cfg.horizon * cfg.max_action_dim).reshape(1, cfg.horizon, cfg.max_action_dim)
    weights = torch.cat([torch.ones(4), torch.linspace(1, 0, 4), torch.zeros(cfg.horizon - 8)])[None]
    with torch.inference_mode():
        eager = [head.sample(ctx, horizon=cfg.horizon, num_steps=4, generator=torch.Generator().manual_seed(3),
                             prefix=p, prefix_weights=w) for p, w in ((None, None), (prefix, weights))]
    fast = FastPath(model, FastPathConfig(device_preprocess=False, attention=None, capture_head="auto"))
    assert fast.capture_mode == "compile"  # CPU: inductor without CUDA graphs
    with torch.inference_mode():
        captured = [fast.sample(ctx, horizon=cfg.horizon, num_steps=4, generator=torch.Generator().manual_seed(3),
                                prefix=p, prefix_weights=w) for p, w in ((None, None), (prefix, weights))]
    for a, b in zip(captured, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(captured[0], captured[1])  # the prefix did steer the captured loop


def test_vla_policy_on_the_fast_path_answers_like_the_eager_path(franka):
    """Frames as the sync hands them (FittedImages of 640x480 frames) through VLAPolicy: the fast path reads
    the native frames (no PIL fit), and the chunk is the eager one up to the 8-bit rounding of the resize."""
    from vla_policy_node.model.vla_policy import VLAPolicy
    from vla_policy_node.spec import Observation
    from vla_policy_node.spec.images import FittedImages
    from vla_policy_node.spec.normalization import normalization_from_limits

    frames = dict(zip(franka.camera_names, _frames()[0], strict=True))
    state = np.array([(j.lower + j.upper) / 2 for j in franka.joints] + [0.02])
    chunks = []
    for fast in (None, FastPathConfig(device_preprocess=True, attention="sdpa")):
        images = FittedImages(frames, {c.name: c for c in franka.cameras})
        policy = VLAPolicy(_model("qwen2_5_vl", franka), normalization_from_limits(franka), franka, fast_path=fast)
        chunks.append(policy.infer(Observation(2.0, images, state, INSTRUCTION)).actions)
        assert (len(images._fitted) == 0) == (fast is not None)  # the fast path never ran the PIL fit
    spread = np.ptp(chunks[0], axis=0).max()
    assert np.abs(chunks[1] - chunks[0]).max() < 0.01 * spread
