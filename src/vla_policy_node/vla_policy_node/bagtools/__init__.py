"""rosbag tooling: record teleoperated demonstrations, replay bags through a policy open loop, convert bags to
LeRobot v3 datasets.

ROS-edge code (it reads and writes bags through rosbags); the dataset *reader* the trainer uses lives in
`train/lerobot_dataset.py` and needs neither rosbags nor ROS.
"""
