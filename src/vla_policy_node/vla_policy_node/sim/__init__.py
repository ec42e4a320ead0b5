"""The simulated arm (MuJoCo, numpy): scene, physics and rendering, tasks, the scripted IK expert.

No ROS, DDS or torch imports: the driver node (`ros/sim_arm_driver.py`) and the evaluation harness wrap it.
"""
