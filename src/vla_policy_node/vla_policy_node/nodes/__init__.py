"""The nodes: glue that wires a transport (rclpy or DDS) to `control/`; no decision about the arm is made here."""
