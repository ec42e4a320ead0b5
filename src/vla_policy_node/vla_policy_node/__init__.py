"""VLA policy runtime for ROS 2 robot arms.

Layers (arrows point down): ros/ -> transport/, msgs/ -> control/, policy/, model/, train/.
The core never imports rclpy, DDS or bag libraries; control/ never imports torch.
"""

__version__ = "0.1.0"
