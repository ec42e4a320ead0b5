"""The open-loop replay report: report.json (everything), report.md (for people) and two figures.

joints.png: per command dimension over time, the recorded reference, what the node would have commanded, and
the first action of every predicted chunk; episodes shaded by outcome. horizon_error.png: mean absolute error
per horizon step (per dimension and overall) and gripper agreement per step.

Files are written into `<out>/.partial` and moved into place only when all of them exist, and stale report
files are removed first, so a failed run never leaves a report that looks complete.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display (before pyplot is imported)
import matplotlib.pyplot as plt
import numpy as np

from vla_policy_node.bagtools.replay import ReplayResult

REPORT_FILES = ("report.json", "report.md", "joints.png", "horizon_error.png")
_OUTCOME_COLORS = {"success": "#2ca02c", "failure": "#d62728", "discarded": "#7f7f7f", "unknown": "#1f77b4"}


def clear_report(out: Path) -> None:
    """Remove a previous report (and a left-over partial one) from `out`."""
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / ".partial", ignore_errors=True)


def write_report(result: ReplayResult, out: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the four report files into `out`; returns name -> path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clear_report(out)
    partial = out / ".partial"
    partial.mkdir()
    summary = {**result.summary, **(extra or {}), "files": list(REPORT_FILES)}
    plot_joints(result, partial / "joints.png")
    plot_horizon_error(result, partial / "horizon_error.png")
    (partial / "report.md").write_text(markdown(summary))
    (partial / "report.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    paths = {}
    for name in REPORT_FILES:
        (partial / name).replace(out / name)
        paths[name] = out / name
    partial.rmdir()
    return paths


# ----------------------------------------------------------------------------------------------- figures


def plot_joints(result: ReplayResult, path: Path) -> None:
    plots = result.plots
    names = plots.names
    origin = _origin(result)
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 1.7 * len(names) + 0.8), sharex=True, squeeze=False)
    reference, executed, predicted = plots.reference, plots.executed, plots.predicted_first
    for d, (ax, name) in enumerate(zip(axes[:, 0], names, strict=True)):
        for episode in plots.episodes:
            if episode.end is not None:
                ax.axvspan(episode.start - origin, episode.end - origin, alpha=0.08,
                           color=_OUTCOME_COLORS.get(episode.outcome, "#1f77b4"), lw=0)
        if len(reference.times):
            ax.plot(reference.times - origin, reference.values[:, d], color="black", lw=1.2, label="recorded")
        if len(executed.times):
            ax.plot(executed.times - origin, executed.values[:, d], color="#1f77b4", lw=0.9, alpha=0.85,
                    label="node command (replay)")
        if len(predicted.times):
            ax.plot(predicted.times - origin, predicted.values[:, d], ".", color="#ff7f0e", ms=3,
                    label="chunk action 0")
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("time since bag start [s] (episodes shaded: green success, red failure, "
                           "grey discarded, blue unlabelled)", fontsize=8)
    fig.suptitle(f"{result.summary['robot']}: predicted vs recorded ({result.summary['target']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_horizon_error(result: ReplayResult, path: Path) -> None:
    chunk = result.summary["chunk_error"]
    dt = _horizon_dt(result)
    mae = np.array([[np.nan if v is None else v for v in row] for row in chunk["mae_per_step_per_dim"]])
    steps = np.arange(mae.shape[0])
    has_gripper = result.summary["gripper"] is not None
    fig, axes = plt.subplots(2 if has_gripper else 1, 1, figsize=(8, 6 if has_gripper else 4), squeeze=False)
    ax = axes[0, 0]
    for d, name in enumerate(result.plots.names):
        ax.plot(steps, mae[:, d], lw=1, alpha=0.8, label=name)
    overall = np.array([np.nan if v is None else v for v in chunk["mae_per_step"]])
    ax.plot(steps, overall, color="black", lw=2.2, label="all dims")
    ax.set_xlabel(f"horizon step k (action time = observation + k x {dt:g} s)")
    ax.set_ylabel("mean |predicted - recorded|")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    if has_gripper:
        agreement = [np.nan if v is None else v for v in result.summary["gripper"]["agreement_per_step"]]
        gx = axes[1, 0]
        gx.plot(steps, agreement, "o-", color="#9467bd")
        gx.set_ylim(-0.02, 1.02)
        gx.set_xlabel("horizon step k")
        gx.set_ylabel("gripper open/closed agreement")
        gx.grid(alpha=0.3)
    fig.suptitle("error vs horizon step", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _origin(result: ReplayResult) -> float:
    firsts = [s.times[0] for s in (result.plots.reference, result.plots.executed, result.plots.predicted_first)
              if len(s.times)]
    episodes = [e.start for e in result.plots.episodes]
    return min(firsts + episodes) if firsts or episodes else 0.0


def _horizon_dt(result: ReplayResult) -> float:
    return float(result.summary.get("action_dt", math.nan))


# ---------------------------------------------------------------------------------------------- markdown


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown(summary: dict[str, Any]) -> str:
    chunk, command, gripper = summary["chunk_error"], summary["command_error"], summary["gripper"]
    latency, counts, bag = summary["latency_ms"], summary["counts"], summary["bag"]
    names = summary["names"]
    lines = [
        f"# Open-loop replay: {summary['robot']}",
        "",
        f"**Latency model: {summary['latency_model']}; {counts.get('inferences', 0)} chunks compared.** "
        f"Instruction from {summary.get('instruction_source', '-')}.",
        *[f"> **Warning:** {w}" for w in summary.get("warnings", [])],
        "",
        f"Bag `{bag['path']}` ({bag['duration_s']:.1f} s, {bag['message_count']} messages, "
        f"{bag['bytes'] / 1e6:.1f} MB). Policy: {summary.get('policy', '-')}.",
        f"Compared with the recorded **{summary['target']}**: {summary['reference']}. Executor "
        f"`{summary['executor']}`, control {summary['control_hz']:g} Hz, inference latency model: "
        f"{summary['latency_model']}.",
        "",
        "## Summary",
        "",
        "| metric | value |",
        "|---|---|",
        f"| chunk MAE (all steps, all dims) | {_fmt(chunk['mae'])} |",
        f"| chunk RMSE | {_fmt(chunk['rmse'])} |",
        f"| chunk MAE at step 0 / last step | {_fmt(chunk['mae_per_step'][0])} / "
        f"{_fmt(chunk['mae_per_step'][-1])} |",
        f"| node command MAE (what it would have sent) | {_fmt(command['mae'])} |",
        f"| gripper agreement | {_fmt(gripper['agreement'] if gripper else None)} |",
        f"| inference latency p50 / p99 / max [ms] | {_fmt(latency.get('p50'))} / {_fmt(latency.get('p99'))} / "
        f"{_fmt(latency.get('max'))} |",
        f"| observations / inferences / chunks accepted | {counts['observations']} / {counts['inferences']} / "
        f"{counts['chunks_accepted']} |",
        f"| chunks outside episodes (not compared) | {counts['chunks_outside_episodes']} |",
        f"| compared (step, dim) pairs | {chunk['count']} |",
        "",
        "## Per dimension",
        "",
        "| dim | chunk MAE | chunk RMSE | max abs | command MAE |",
        "|---|---|---|---|---|",
    ]
    for d, name in enumerate(names):
        lines.append(f"| {name} | {_fmt(chunk['mae_per_dim'][d])} | {_fmt(chunk['rmse_per_dim'][d])} | "
                     f"{_fmt(chunk['max_abs_per_dim'][d])} | {_fmt(command['mae_per_dim'][d])} |")
    dt = summary.get("action_dt", math.nan)
    lines += ["", "## Per horizon step", "", "| k | t [s] | MAE | compared | gripper agreement |",
              "|---|---|---|---|---|"]
    for k, mae in enumerate(chunk["mae_per_step"]):
        agree = gripper["agreement_per_step"][k] if gripper else None
        lines.append(f"| {k} | {k * dt:.2f} | {_fmt(mae)} | {chunk['count_per_step'][k]} | {_fmt(agree)} |")
    lines += ["", "## Episodes", "", "| # | start [s into the bag] | length [s] | outcome | instruction | chunks | "
              "chunk MAE | command MAE | gripper | in totals |", "|---|---|---|---|---|---|---|---|---|---|"]
    t0 = bag["start_s"]
    for e in summary["episodes"]:
        length = (e["end"] - e["start"]) if e["end"] is not None else math.nan
        lines.append(f"| {e['index']} | {e['start'] - t0:.1f} | {length:.1f} | {e['outcome']} | "
                     f"{e['instruction'] or '-'} | {e['chunks']} | {_fmt(e['chunk_mae'])} | {_fmt(e['command_mae'])} "
                     f"| {_fmt(e['gripper_agreement'])} | {'yes' if e['in_totals'] else 'no'} |")
    notes = list(summary.get("episode_warnings", []))
    if summary["inference_errors"]:
        notes += [f"inference error: {e}" for e in summary["inference_errors"]]
    if summary["message_errors"]:
        notes += [f"rejected messages: {k} x{n}" for k, n in summary["message_errors"].items()]
    if notes:
        lines += ["", "## Warnings", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Figures", "", "![predicted vs recorded](joints.png)", "",
              "![error vs horizon step](horizon_error.png)", ""]
    return "\n".join(lines)
