"""Hardware drivers without ROS (numpy out): the camera nodes wrap these."""
