"""The MJCF of the simulated tabletop: a 6-joint arm with a parallel gripper, a table, colored blocks, flat
colored pads (place targets), a fixed scene camera and a wrist camera.

Why these choices: the blocks are large (6 cm) and few colors are used, each far from the others in hue, and
the scene camera looks almost straight down on the workspace, so that at 64-96 px each block covers many pixels
and its color is unambiguous. Joint-level position servos with gravity compensation make the arm follow
joint-position commands closely, as a real arm's joint_trajectory_controller does. Capsules that overlap at
every pose (base/link1, link3/link5) do not collide: their permanent contacts made the solver jitter a block
resting on a pad.

The pads' colors are none of the blocks', so "the <color> block" and "the <color> pad" never name the same
thing; they are 8 mm thick and solid, so a block is placed on one, not pushed onto it. The fingers open to 6 cm
each (a 12 cm gap around a 6 cm block): a grasp tolerates the few centimetres a policy that sees 4 mm pixels
misplaces it by. The wrist camera sits 8 cm beside the hand, across the fingers' closing axis, and looks at the
point 4 cm beyond the finger tips: the fingers stay at the image's edge and what lies between them (the block
to grasp, the pad under it) is in the middle, where the scene camera sees only the top of the arm.
"""

from __future__ import annotations

from dataclasses import dataclass

# name -> RGB in [0, 1]: hues far apart, saturated, none close to the table or arm colors
BLOCK_COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.8, 0.1),
    "blue": (0.1, 0.25, 0.95),
    "yellow": (0.95, 0.85, 0.1),
}
# place targets: hues far from every block's and from the table, arm and fingers
PAD_COLORS: dict[str, tuple[float, float, float]] = {
    "purple": (0.55, 0.2, 0.85),
    "white": (0.95, 0.95, 0.95),
}
FINGER_RANGE = 0.06  # m per finger
ARM_JOINTS = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
TOOL_SITE = "tool"
SCENE_CAMERA = "scene"
WRIST_CAMERA = "wrist"


@dataclass(frozen=True)
class SceneConfig:
    colors: tuple[str, ...] = tuple(BLOCK_COLORS)
    block_half: float = 0.03  # half edge of a block (m)
    pads: tuple[str, ...] = tuple(PAD_COLORS)
    pad_half: float = 0.05  # half edge of a (square) pad
    pad_height: float = 0.008
    timestep: float = 0.002
    max_image: int = 256  # offscreen buffer (px): the largest camera image that can be rendered


def _block(name: str, rgb: tuple[float, float, float], half: float, index: int) -> str:
    r, g, b = rgb
    return (f'<body name="block_{name}" pos="{0.4 + 0.1 * index:.3f} 0.6 {half:.4f}">'
            f'<freejoint name="block_{name}_free"/>'
            f'<geom name="block_{name}" type="box" size="{half} {half} {half}" rgba="{r} {g} {b} 1" mass="0.05" '
            'friction="1.5 0.01 0.001" condim="4"/></body>')


def _pad(name: str, rgb: tuple[float, float, float], half: float, height: float, index: int) -> str:
    """A static body: the task layout moves it (model.body_pos) onto the table or parks it off it."""
    r, g, b = rgb
    return (f'<body name="pad_{name}" pos="{-1.0 - 0.2 * index:.3f} 2.0 {height / 2:.4f}">'
            f'<geom name="pad_{name}" type="box" size="{half} {half} {height / 2:.4f}" rgba="{r} {g} {b} 1" '
            'friction="1 0.005 0.0001"/></body>')


def build_mjcf(config: SceneConfig = SceneConfig()) -> str:
    """The scene as MJCF text; blocks and pads start off the table (the task layout places them)."""
    blocks = "".join(_block(c, BLOCK_COLORS[c], config.block_half, i) for i, c in enumerate(config.colors))
    blocks += "".join(_pad(c, PAD_COLORS[c], config.pad_half, config.pad_height, i)
                      for i, c in enumerate(config.pads))
    size = config.max_image
    return f"""<mujoco model="sim_arm">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{config.timestep}" integrator="implicitfast"/>
  <visual><global offwidth="{size}" offheight="{size}"/><quality shadowsize="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5" specular="0 0 0"/></visual>
  <default>
    <joint damping="2" armature="0.05"/>
    <geom contype="1" conaffinity="1" friction="1 0.005 0.0001"/>
    <position kp="400" forcerange="-80 80"/>
    <default class="link"><geom type="capsule" rgba="0.75 0.75 0.78 1" mass="0.3"/></default>
  </default>
  <worldbody>
    <geom name="table" type="box" size="0.8 0.8 0.02" pos="0.3 0 -0.02" rgba="0.55 0.5 0.45 1"/>
    <camera name="{SCENE_CAMERA}" pos="0.46 0 1.0" xyaxes="0 -1 0 1 0 0" fovy="30"/>
    <body name="base" pos="0 0 0">
      <geom type="cylinder" size="0.07 0.04" pos="0 0 0.04" rgba="0.3 0.3 0.32 1"/>
      <body name="link1" pos="0 0 0.08" gravcomp="1">
        <joint name="joint1" axis="0 0 1" range="-3 3"/>
        <geom class="link" fromto="0 0 0 0 0 0.1" size="0.045"/>
        <body name="link2" pos="0 0 0.1" gravcomp="1">
          <joint name="joint2" axis="0 1 0" range="-2 2"/>
          <geom class="link" fromto="0 0 0 0 0 0.35" size="0.04"/>
          <body name="link3" pos="0 0 0.35" gravcomp="1">
            <joint name="joint3" axis="0 1 0" range="-2.5 2.5"/>
            <geom class="link" fromto="0 0 0 0 0 0.3" size="0.035"/>
            <body name="link4" pos="0 0 0.3" gravcomp="1">
              <joint name="joint4" axis="0 0 1" range="-3 3"/>
              <geom class="link" fromto="0 0 0 0 0 0.05" size="0.03"/>
              <body name="link5" pos="0 0 0.05" gravcomp="1">
                <joint name="joint5" axis="0 1 0" range="-2 2"/>
                <geom class="link" fromto="0 0 0 0 0 0.05" size="0.028"/>
                <body name="link6" pos="0 0 0.05" gravcomp="1">
                  <joint name="joint6" axis="0 0 1" range="-3 3"/>
                  <geom type="box" size="0.05 0.015 0.01" pos="0 0 0.01" rgba="0.25 0.25 0.28 1" mass="0.1"/>
                  <camera name="{WRIST_CAMERA}" pos="0 0.08 -0.01" xyaxes="0 0.8824 0.4706 1 0 0" fovy="75"/>
                  <site name="{TOOL_SITE}" pos="0 0 0.1" size="0.008" rgba="1 1 1 0"/>
                  <body name="finger_left" pos="0 0 0.02" gravcomp="1">
                    <joint name="finger_left" type="slide" axis="1 0 0" range="0 {FINGER_RANGE}" damping="5"/>
                    <geom type="box" size="0.006 0.012 0.04" pos="0.006 0 0.04" rgba="0.2 0.2 0.2 1" mass="0.02"
                          friction="2 0.01 0.001" condim="4"/>
                  </body>
                  <body name="finger_right" pos="0 0 0.02" gravcomp="1">
                    <joint name="finger_right" type="slide" axis="-1 0 0" range="0 {FINGER_RANGE}" damping="5"/>
                    <geom type="box" size="0.006 0.012 0.04" pos="-0.006 0 0.04" rgba="0.2 0.2 0.2 1" mass="0.02"
                          friction="2 0.01 0.001" condim="4"/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
    {blocks}
  </worldbody>
  <contact><exclude body1="base" body2="link1"/><exclude body1="link3" body2="link5"/>
    <exclude body1="link6" body2="finger_left"/><exclude body1="link6" body2="finger_right"/>
    <exclude body1="link5" body2="finger_left"/><exclude body1="link5" body2="finger_right"/>
    <exclude body1="finger_left" body2="finger_right"/></contact>
  <actuator>
    {"".join(f'<position name="{j}" joint="{j}"/>' for j in ARM_JOINTS)}
    <position name="finger_left" joint="finger_left" kp="300" forcerange="-20 20"/>
    <position name="finger_right" joint="finger_right" kp="300" forcerange="-20 20"/>
  </actuator>
</mujoco>"""
