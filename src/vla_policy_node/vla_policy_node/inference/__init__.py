"""Where the model runs, seen from the control loop: an InferencePolicy that sends observations across a boundary
and gets time-stamped chunks back, so nothing the model does can stall a control tick.

- `process.ProcessPolicy`: the model in a process of its own on this machine; frames through shared memory.
- `remote.RemotePolicy`: the model on another machine (nodes/inference_server.py) over the node's DDS/ROS
  transport; frames travel once, on their camera topics.
"""
