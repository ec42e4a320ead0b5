"""The demo's image strip says on every frame what the arm was asked and when (issue 17: a tile cut out of the
README's strip must still carry the instruction and the time)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from vla_policy_node.experiments.sim_arm.closed_loop import EpisodeResult, FrameNote
from vla_policy_node.experiments.sim_arm.figures import INSTRUCTION_BAND, SCALE, _fit, write_strip

HEADER = 22  # the strip's outcome line above the tiles
PAD = 2  # white border around each tile


def _episode(frames: int, instruction: str) -> EpisodeResult:
    gray = np.full((48, 64, 3), 90, np.uint8)
    return EpisodeResult(seed=7, instruction=instruction, success=True, time=3.2, final_distance=0.01,
                         frames=[gray.copy() for _ in range(frames)],
                         notes=[FrameNote(time=0.1 * k, marks={"block": (20.0, 20.0)}) for k in range(frames)])


def _tiles(path, episode: EpisodeResult) -> list[np.ndarray]:
    strip = np.asarray(Image.open(path).convert("RGB"))[HEADER:]
    height, width = episode.frames[0].shape[0] * SCALE, episode.frames[0].shape[1] * SCALE
    step = width + 2 * PAD
    return [strip[PAD:PAD + height, x + PAD:x + PAD + width] for x in range(0, strip.shape[1], step)]


def test_every_frame_carries_the_instruction_in_its_bottom_band(tmp_path) -> None:
    episode = _episode(11, "put the blue block on the white pad")
    write_strip(episode, tmp_path / "strip.png", every=5)
    tiles = _tiles(tmp_path / "strip.png", episode)
    assert len(tiles) == 3  # frames 0, 5, 10
    for tile in tiles:
        band = tile[-INSTRUCTION_BAND:]
        white = (band.min(axis=2) > 200).sum()
        black = (band.max(axis=2) < 30).sum()
        assert white > 100, "no instruction text in the frame's band"
        assert black > 0.5 * band.shape[0] * band.shape[1], "the band is not the dark background the text is read on"
    # the band's text differs with the instruction: a different instruction draws different pixels
    other = _episode(11, "put the red block on the green pad")
    write_strip(other, tmp_path / "other.png", every=5)
    assert not np.array_equal(_tiles(tmp_path / "other.png", other)[0][-INSTRUCTION_BAND:],
                              tiles[0][-INSTRUCTION_BAND:])


def test_a_long_instruction_is_shortened_to_the_frame_width() -> None:
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    text = "put the blue block on the white pad " * 4
    fitted = _fit(draw, text, 120)
    assert fitted.endswith("...") and draw.textlength(fitted) <= 120 and text.startswith(fitted[:-3])
    assert _fit(draw, "short", 120) == "short"
