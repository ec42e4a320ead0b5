"""Training: samples and collation (the serving pipeline), trainer, vla_train recipes, LeRobot v3 I/O, RoboAlign."""
