"""Installs the repository's top-level launch/ and config/ into share/vla_bringup.

The files live at the top of the repository (one place to edit); this package only ships them, so
`ros2 launch vla_bringup <robot>.launch.py` and `get_package_share_directory('vla_bringup')/config` work.
"""

import os
from pathlib import Path

from setuptools import setup

PACKAGE = "vla_bringup"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def tree(top: str) -> list[tuple[str, list[str]]]:
    """data_files entries for every file under REPO/top, keeping the folder layout."""
    root = REPO / top
    entries: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            dest = f"share/{PACKAGE}/{path.parent.relative_to(REPO).as_posix()}"
            entries.setdefault(dest, []).append(os.path.relpath(path, HERE))
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="VLA ROS team",
    maintainer_email="team@vla-ros.dev",
    description="Launch and config files for VLA policies on robot arms",
    license="Apache-2.0",
)
