"""Robot configs by YAML path or built-in name (`sim_arm`, `franka_fr3`, ...), for every command and node, so
`--robot sim_arm` (bag tools) and `--robot-config sim_arm` (nodes) find the same file."""

from __future__ import annotations

from pathlib import Path

from vla_policy_node.spec.embodiment import ConfigError, Embodiment, load_embodiment
from vla_policy_node.spec.repo_files import REPO_CONFIG

_REPO_ROBOTS = REPO_CONFIG / "robots"
ROBOT_CONFIG_HELP = "robot config: a YAML path or a built-in name (sim_arm, franka_fr3, ur5e, so101)"


def robot_config_path(robot: str | Path) -> Path:
    """A robot YAML path, or a robot name looked up in the installed vla_bringup share, then the source tree."""
    path = Path(robot)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("vla_bringup")) / "config" / "robots")
    except (ImportError, LookupError):
        pass
    candidates.append(_REPO_ROBOTS)
    for directory in candidates:
        if (directory / f"{robot}.yaml").is_file():
            return directory / f"{robot}.yaml"
    known = sorted(p.stem for d in candidates if d.is_dir() for p in d.glob("*.yaml"))
    raise ConfigError(f"robot {str(robot)!r}: no such YAML file or built-in robot (built-in: {known})")


def load_robot(robot: str | Path) -> Embodiment:
    return load_embodiment(robot_config_path(robot))
