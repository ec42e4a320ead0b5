"""ament_python package that `pip install` also accepts, so the core runs without ROS."""

from setuptools import find_packages, setup

PACKAGE = "vla_policy_node"

MODEL = [
    "torch>=2.4",  # install `torch==2.13.0` first: a bare `torch` pulls the CUDA build
    "transformers==5.23.0",
    "peft==0.21.2",
    "accelerate>=1.0",  # RoboAlign stages: DDP/FSDP, bf16 (also a dependency of peft)
    "safetensors>=0.4",
    "tokenizers>=0.20",
    "pillow>=10",
    "tqdm>=4.66",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    python_requires=">=3.11",
    install_requires=["numpy>=1.26", "pyyaml>=6", "scipy>=1.11", "pillow>=10"],
    extras_require={
        "model": MODEL,
        "ros": [  # ROS-free transports: DDS wire-compatible with ROS 2, rosbag2 files, image codecs
            "cyclonedds==11.0.1",
            "rosbags==0.11.9",
            "mcap>=1.2",
            "opencv-python-headless>=4.9",
        ],
        # rosbag tooling (vla_record, vla_replay_test, vla_bag_to_dataset) and the LeRobot dataset reader
        # PyAV: LeRobot video features (MP4: AV1/H.264 decode and encode, FFmpeg bundled in the wheel)
        "bagtools": ["pyarrow>=15", "matplotlib>=3.8", "tqdm>=4.66", "av==18.1.0"],
        # Intel RealSense cameras; the wheel needs the system library libusb-1.0 (Debian: libusb-1.0-0)
        "camera": ["pyrealsense2>=2.54"],
        # the simulated arm (MuJoCo, offscreen EGL rendering; Debian: libegl1 libgl1-mesa-dri libgles2) and the
        # Meta-World benchmark, which pins mujoco 3.3.0
        "sim": ["mujoco==3.3.0"],
        # BabyAI (minigrid) with its bot, for the discrete half of the action-space-adapter study
        "babyai": ["minigrid==3.2.0", "gymnasium==1.4.0"],
        # Meta-World (MT1 tasks and their scripted experts) for the benchmark evaluation; metaworld 3.1.1 pins
        # mujoco==3.3.0 (the `sim` pin) and needs gymnasium>=1.1 (the `babyai` pin satisfies it)
        "metaworld": ["metaworld==3.1.1", "mujoco==3.3.0", "gymnasium==1.4.0"],
        "test": ["pytest>=8", "hypothesis>=6.100", "ruff>=0.6", "mypy==1.19.1"],
        # building src/ with colcon from this venv (README, "On a ROS 2 machine"); lark is also what ROS's
        # `launch` needs to import here (launch_test runs under this venv's Python)
        "colcon": ["colcon-common-extensions==0.3.0", "lark==1.3.1"],
    },
    zip_safe=True,
    maintainer="VLA ROS team",
    maintainer_email="team@vla-ros.dev",
    description="VLA policy runtime for ROS 2 robot arms",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "vla_demo = vla_policy_node.cli.demo:main",
            "realsense_camera_node = vla_policy_node.nodes.entry:realsense_camera_node",
            "ghost_state_publisher = vla_policy_node.nodes.entry:ghost_state_publisher",
            "vla_record = vla_policy_node.bagtools.record:main",
            "vla_replay_test = vla_policy_node.bagtools.replay_cli:main",
            "vla_bag_to_dataset = vla_policy_node.bagtools.dataset:main",
            "policy_node = vla_policy_node.nodes.entry:policy_node",
            "vla_inference_server = vla_policy_node.nodes.entry:inference_server",
            "command_mux_node = vla_policy_node.nodes.entry:command_mux_node",
            "fake_arm_driver = vla_policy_node.nodes.entry:fake_arm_driver",
            "sim_arm_driver = vla_policy_node.nodes.entry:sim_arm_driver",
            "vla_train_action_tokenizer = vla_policy_node.cli.train_action_tokenizer:main",
            "vla_train = vla_policy_node.cli.vla_train:main",
            "roboalign_sft = vla_policy_node.cli.roboalign:sft_main",
            "roboalign_grpo = vla_policy_node.cli.roboalign:grpo_main",
            "roboalign_vla = vla_policy_node.cli.roboalign:vla_main",
        ],
    },
)
