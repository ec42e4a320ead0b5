"""Meta-World bench: seeded layouts render and replay exactly, the scripted expert solves its task (it is the
teacher), samples line up with the expert's steps, the policy runs in receding horizon, and a short training run
lowers the loss. The real closed-loop measurement is the CLI's (README); these take well under a minute."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("metaworld")

from test.system.processes import REPO
from vla_policy_node.experiments.metaworld import evaluate as metaworld_eval
from vla_policy_node.experiments.metaworld.data import demonstrations, episode_samples, expert_episode
from vla_policy_node.experiments.metaworld.env import FREE_VIEWS, FreeView, MetaWorldEnv, MetaWorldEnvConfig
from vla_policy_node.experiments.metaworld.evaluate import (
    RECIPES,
    ChunkController,
    EnsembleController,
    ExpertController,
    MetaWorldEvalConfig,
    build_model,
    run_episodes,
    train_model,
)
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.spec.embodiment import load_embodiment
from vla_policy_node.train.data import fit_normalization

pytestmark = pytest.mark.slow  # Meta-World environments, experts and training

ROBOT = load_embodiment(REPO / "config" / "sim" / "metaworld_sawyer.yaml")
CAMERA = ROBOT.cameras[0]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reach():
    env = MetaWorldEnv(MetaWorldEnvConfig(task="reach-v3", height=CAMERA.height, width=CAMERA.width))
    yield env
    env.close()


def test_embodiment_is_the_robot_part_of_metaworld() -> None:
    assert ROBOT.state_names == ("hand_x", "hand_y", "hand_z", "gripper")
    assert ROBOT.action_names == ("delta_hand_x", "delta_hand_y", "delta_hand_z", "gripper")
    assert (ROBOT.gripper.lower, ROBOT.gripper.upper) == (-1.0, 1.0)


def test_renders_the_configured_size(reach) -> None:
    reach.reset(0)
    image = reach.render()
    assert image.shape == (CAMERA.height, CAMERA.width, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a scene, not a blank buffer
    env = MetaWorldEnv(MetaWorldEnvConfig(task="push-v3", height=48, width=64))  # a second GL context, not square
    try:
        env.reset(0)
        other = env.render()
        assert other.shape == (48, 64, 3) and other.std() > 10
    finally:
        env.close()


def test_a_layout_replays_exactly_whatever_ran_before(reach) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 4))

    def rollout(layout: int) -> tuple[np.ndarray, np.ndarray]:
        obs = reach.reset(layout)
        first = reach.render()
        for a in actions:
            obs, _ = reach.step(a)
        return np.concatenate([first.ravel(), reach.render().ravel()]), obs

    image_a, obs_a = rollout(7)
    image_other, obs_other = rollout(8)
    image_b, obs_b = rollout(7)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(image_a, image_b)
    assert not np.array_equal(obs_a[-3:], obs_other[-3:])  # another layout: another goal
    assert not np.array_equal(image_a, image_other)


def test_layouts_beyond_one_benchmark_are_distinct(reach) -> None:
    goals = [reach.reset(k)[-3:] for k in (0, 49, 50, 10_000)]
    assert len({tuple(g) for g in goals}) == 4


def test_expert_solves_reach(reach) -> None:
    report = run_episodes(reach, ExpertController(), range(10))
    assert report.success_rate >= 0.9, report.summary()


def test_samples_line_up_with_the_expert_steps(reach) -> None:
    episode = expert_episode(reach, 10_003)
    assert episode.success
    horizon = 16
    samples = episode_samples(episode, horizon=horizon, camera=CAMERA.name, instruction="reach", tag=ROBOT.tag)
    steps = len(episode.actions)
    assert len(samples) == steps > horizon
    for t, s in enumerate(samples):
        assert s.images[CAMERA.name].shape == (CAMERA.height, CAMERA.width, 3)
        assert s.state.shape == (4,) and s.actions.shape == (horizon, 4)
        np.testing.assert_array_equal(s.actions[0], episode.actions[t])
        live = min(horizon, steps - t)
        np.testing.assert_array_equal(s.valid, np.arange(horizon) < live)
        np.testing.assert_array_equal(s.actions[:live], np.asarray(episode.actions[t:t + live]))
        assert np.all(np.abs(s.actions) <= 1.0)
    # sample t shows the scene before step t: replay t expert actions and compare image and state
    t = 9
    obs = reach.reset(10_003)
    for a in episode.actions[:t]:
        obs, _ = reach.step(a)
    np.testing.assert_array_equal(samples[t].images[CAMERA.name], reach.render())
    np.testing.assert_array_equal(samples[t].state, obs[:4])


def test_failed_expert_episodes_are_left_out(reach) -> None:
    short = MetaWorldEnv(MetaWorldEnvConfig(task="reach-v3", height=32, width=32, max_steps=5))
    try:
        samples, stats = demonstrations(short, [0, 1], horizon=16, camera=CAMERA.name, tag=ROBOT.tag)
        kept, _ = demonstrations(short, [0, 1], horizon=16, camera=CAMERA.name, tag=ROBOT.tag, keep_failures=True)
    finally:
        short.close()
    assert samples == [] and stats.successes == [False, False]
    assert len(kept) == 10


class RecordingPolicy(VLAPolicy):
    chunks: list[np.ndarray]

    def infer(self, observation, *, prefix=None):
        chunk = super().infer(observation, prefix=prefix)
        self.chunks.append(chunk.actions)
        return chunk


class RecordingEnv(MetaWorldEnv):
    sent: list[np.ndarray]

    def step(self, action):
        self.sent.append(np.array(action))
        return super().step(action)


def _recording(reach, max_steps: int) -> tuple[RecordingPolicy, RecordingEnv]:
    """An untrained policy that keeps every chunk it returns, and an env that keeps every action it is sent."""
    samples, _ = demonstrations(reach, [10_000], horizon=16, camera=CAMERA.name, tag=ROBOT.tag)
    policy = RecordingPolicy(build_model(ROBOT, MetaWorldEvalConfig(image_size=56)), fit_normalization(samples),
                             ROBOT)
    policy.chunks = []
    env = RecordingEnv(MetaWorldEnvConfig(task="reach-v3", height=CAMERA.height, width=CAMERA.width,
                                          max_steps=max_steps))
    env.sent = []
    return policy, env


def test_policy_runs_receding_horizon(reach) -> None:
    policy, env = _recording(reach, max_steps=14)
    try:
        report = run_episodes(env, ChunkController(policy, execute=6), [3])
    finally:
        env.close()
    assert report.lengths == [14] and len(report.latency_ms) == len(policy.chunks) == 3  # ceil(14 / 6)
    assert all(c.shape == (16, 4) for c in policy.chunks)
    np.testing.assert_array_equal(np.asarray(env.sent),
                                  np.concatenate([policy.chunks[0][:6], policy.chunks[1][:6], policy.chunks[2][:2]]))


def test_ensemble_averages_the_live_chunks_step_by_step(reach) -> None:
    policy, env = _recording(reach, max_steps=7)
    decay = 0.5
    try:
        report = run_episodes(env, EnsembleController(policy, execute=3, decay=decay), [3])
    finally:
        env.close()
    assert report.lengths == [7] and len(policy.chunks) == 3  # chunks at steps 0, 3, 6
    chunks = policy.chunks
    for t, sent in enumerate(env.sent):
        live = [c[t - 3 * i] for i, c in enumerate(chunks) if 0 <= t - 3 * i < 16]  # oldest first
        w = np.exp(-decay * np.arange(len(live)))
        np.testing.assert_allclose(sent, w @ np.asarray(live) / w.sum(), atol=1e-12)
    assert not np.allclose(env.sent[6], chunks[2][0])  # step 6 mixes three chunks, not the newest alone


def test_aimed_expert_settles_on_the_goal_and_goes_on_past_success(reach) -> None:
    """The scripted reach policy parks the fingers 4.5 cm from the goal (the success ball is 5 cm); aimed by the
    fingers' centre it parks them on the goal. after_success records that many more expert steps."""

    def settled(aim: bool) -> float:
        obs = reach.reset(10_001)
        for _ in range(150):
            obs, _ = reach.step(reach.expert_action(obs, aim_fingers=aim))
        return float(np.linalg.norm(reach.env.tcp_center - obs[36:39]))

    assert settled(False) > 0.04 and settled(True) < 0.01
    plain = expert_episode(reach, 10_001, aim_fingers=True)
    longer = expert_episode(reach, 10_001, aim_fingers=True, after_success=7)
    assert plain.success and longer.success and len(longer.actions) == len(plain.actions) + 7
    np.testing.assert_array_equal(longer.actions[: len(plain.actions)], plain.actions)


def test_front_view_shows_the_goal_where_it_is() -> None:
    """The free "front" camera renders; moving reach's goal moves red pixels in its image (the goal is in view
    across the goal box), and the recommended recipe is the documented one."""
    env = MetaWorldEnv(MetaWorldEnvConfig(task="reach-v3", camera="front", height=128, width=128))
    try:
        masks = []
        for layout in (100, 101, 102, 103):
            env.reset(layout)
            image = env.render().astype(int)
            masks.append((image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60))  # bright red
    finally:
        env.close()
    common = np.logical_and.reduce(masks)  # the fingertips, at the same start pose in every layout
    goals = [m & ~common for m in masks]
    assert all(g.sum() >= 12 for g in goals), [int(g.sum()) for g in goals]  # a dozen pixels or more at 128 px
    assert len({tuple(np.round(np.argwhere(g).mean(0))) for g in goals}) == 4
    assert RECIPES["grounding_front"] == MetaWorldEvalConfig(  # the README's recommended Meta-World recipe
        camera="front", demos=600, family="qwen3_vl", image_size=128, aux_weight=4.0, start_frames=3, start_weight=5.0,
        batch_size=32, steps=5000, aim_fingers=True, after_success=20)
    assert FREE_VIEWS["front"] == FreeView(lookat=(0.0, 0.75, 0.12), azimuth=270.0, elevation=-30.0, distance=0.75)
    # the README's pick-place row (54% of 50) used this one
    assert FREE_VIEWS["front_high"] == FreeView(lookat=(0.0, 0.72, 0.1), azimuth=270.0, elevation=-50.0, distance=0.6)
    with pytest.raises(ValueError, match="no camera"):
        MetaWorldEnv(MetaWorldEnvConfig(task="reach-v3", camera="nowhere"))


def test_short_training_lowers_the_loss(reach, tmp_path) -> None:
    samples, _ = demonstrations(reach, range(10_000, 10_004), horizon=16, camera=CAMERA.name, tag=ROBOT.tag)
    config = MetaWorldEvalConfig(steps=100, batch_size=8, warmup_steps=10, image_size=56)
    _, _, losses, _ = train_model(ROBOT, samples, config, tmp_path / "run")
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-20:]))
    assert last <= 0.7 * first, (first, last)


def test_cli_writes_the_summary(tmp_path) -> None:
    out = tmp_path / "out"
    assert metaworld_eval.main(["--task", "reach-v3", "--demos", "2", "--steps", "3", "--warmup-steps", "1",
                                "--batch-size", "2", "--image-size", "56", "--episodes", "2", "--max-steps", "80",
                                "--robot-config", str(REPO / "config/sim/metaworld_sawyer.yaml"),
                                "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["demonstrations"]["episodes"] == 2 and summary["training"]["steps"] == 3
    evaluation = summary["evaluation"]
    for name in ("trained", "expert", "random_init"):
        assert evaluation[name]["episodes"] == 2
    trained = evaluation["trained"]
    assert trained["latency_ms"]["inferences"] == sum(-(-n // 8) for n in trained["lengths"])  # execute=8
    assert "latency_ms" not in evaluation["expert"]


def test_samples_carry_the_goal_and_object_for_the_aux_loss_only(reach) -> None:
    samples, stats = demonstrations(reach, [10_003], horizon=16, camera=CAMERA.name, tag=ROBOT.tag)
    obs = reach.reset(10_003)
    goal, puck = obs[36:39], obs[4:7]
    assert stats.frame_in_episode == list(range(len(samples)))
    for s in samples:
        assert s.env_state.shape == (6,) and s.state.shape == (4,)  # the policy's state has neither
        np.testing.assert_allclose(s.env_state[:3], goal, atol=1e-9)  # the goal does not move
    np.testing.assert_allclose(samples[0].env_state[3:], puck, atol=1e-9)


def test_grounding_recipe_trains_one_policy_for_several_tasks(tmp_path) -> None:
    out = tmp_path / "out"
    assert metaworld_eval.main(["--task", "reach-v3,push-v3", "--recipe", "grounding", "--demos", "1",
                                "--steps", "2", "--warmup-steps", "1", "--batch-size", "2", "--image-size", "64",
                                "--episodes", "1", "--max-steps", "200", "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["aux_weight"] == 4.0 and summary["config"]["family"] == "qwen3_vl"
    assert set(summary["per_task"]) == {"reach-v3", "push-v3"}
    for task in summary["per_task"].values():
        assert {"trained", "expert", "random_init"} <= set(task) and task["trained"]["episodes"] == 1
    config = json.loads((out / "run" / "checkpoint-0000002" / "vla_config.json").read_text())
    assert config["aux"]["names"] == ["goal_x", "goal_y", "goal_z", "object_x", "object_y", "object_z"]
