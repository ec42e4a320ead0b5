"""The demo's pictures of a closed-loop evaluation: an image strip of one episode and a plot of all of them.

Strip: every `every`-th recorded frame of the scene camera, enlarged, with the episode time and the instruction
the policy had at that moment on each frame (so a cropped tile still says what the arm was asked), markers where
the task's objects are (a circle on the named block, a square on where it must go), and the outcome above.
Plot: each episode's final distance with the success criterion drawn and
named, and the inference latency histogram.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_policy_node.experiments.sim_arm.closed_loop import EpisodeResult, EvaluationReport

SCALE = 2  # strip frames are drawn at twice the camera's resolution
# how each task kind is judged, for the plot: the dashed line's height and its label
CRITERIA = {
    "reach": (0.05, "success: tool within 5 cm of the named block"),
    "pick_place": (0.05, "success: block resting on the named pad (centre within its 5 cm half-width), "
                         "released and still"),
}


INSTRUCTION_BAND = 14  # pixels at the bottom of each strip frame that carry the instruction


def _fit(draw, text: str, width: int) -> str:
    """`text`, shortened with an ellipsis until it is at most `width` pixels wide in the default font."""
    if draw.textlength(text) <= width:
        return text
    while text and draw.textlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def write_strip(episode: EpisodeResult, path: Path, every: int = 5) -> None:
    from PIL import Image, ImageDraw

    picked = list(range(0, len(episode.frames), every))
    if picked[-1] != len(episode.frames) - 1:
        picked.append(len(episode.frames) - 1)
    tiles = []
    for k in picked:
        frame = Image.fromarray(episode.frames[k]).resize(
            (episode.frames[k].shape[1] * SCALE, episode.frames[k].shape[0] * SCALE), Image.NEAREST)
        draw = ImageDraw.Draw(frame)
        note = episode.notes[k] if k < len(episode.notes) else None
        if note is not None:
            for name, (u, v) in note.marks.items():
                x, y, r = u * SCALE, v * SCALE, 9
                if name == "goal":
                    draw.rectangle((x - r - 3, y - r - 3, x + r + 3, y + r + 3), outline=(255, 140, 0), width=2)
                else:
                    draw.ellipse((x - r, y - r, x + r, y + r), outline=(255, 255, 255), width=2)
            draw.rectangle((0, 0, 58, 14), fill=(0, 0, 0))
            draw.text((3, 2), f"t={note.time:.1f} s", fill=(255, 255, 255))
        height = frame.size[1]
        draw.rectangle((0, height - INSTRUCTION_BAND, frame.size[0], height), fill=(0, 0, 0))
        draw.text((3, height - INSTRUCTION_BAND + 2), _fit(draw, episode.instruction, frame.size[0] - 6),
                  fill=(255, 255, 255))
        tiles.append(np.pad(np.asarray(frame), ((2, 2), (2, 2), (0, 0)), constant_values=255))
    strip = np.concatenate(tiles, axis=1)
    header = np.full((22, strip.shape[1], 3), 255, np.uint8)
    image = Image.fromarray(np.concatenate([header, strip], axis=0))
    outcome = f"success after {episode.time:.1f} s" if episode.success else f"no success in {episode.time:.1f} s"
    legend = "white circle: the named block" + (", orange square: where it goes" if any(
        "goal" in n.marks for n in episode.notes) else "")
    ImageDraw.Draw(image).text((4, 5), f'"{episode.instruction}" (layout {episode.seed}): {outcome}; {legend}',
                               fill=(0, 0, 0))
    image.save(path)


def write_plot(report: EvaluationReport, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threshold, criterion = CRITERIA[task]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    episodes = report.episodes
    colors = ["tab:green" if e.success else "tab:red" for e in episodes]
    a.bar([e.seed for e in episodes], [e.final_distance for e in episodes], color=colors)
    a.axhline(threshold, color="k", lw=0.8, ls="--", label=criterion)
    a.legend(loc="upper left", fontsize=7, frameon=False)
    if len(episodes) <= 25:
        a.set_xticks([e.seed for e in episodes])
    what = "block to its resting point on the pad" if task == "pick_place" else "tool to the named block"
    a.set(xlabel="episode (unseen layout seed)", ylabel=f"final distance (m)\n{what}",
          title=f"{task}: success {report.success_rate:.0%} of {len(episodes)} (green)")
    a.set_ylim(0, max(2.5 * threshold, max((e.final_distance for e in episodes), default=0) * 1.1))
    latencies = np.concatenate([e.latencies_ms for e in episodes if e.latencies_ms] or [np.zeros(1)])
    b.hist(latencies, bins=30)
    b.set(xlabel="inference latency (ms)", ylabel="count", title="policy latency (CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
