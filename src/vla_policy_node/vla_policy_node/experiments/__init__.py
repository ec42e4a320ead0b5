"""The simulated arm put to work: scripted demonstrations through the recorder, training, closed-loop evaluation.

Glue between `sim/` (MuJoCo, no ROS), the driver node, the bag tools, the trainer and the policy/mux runtimes.
"""
