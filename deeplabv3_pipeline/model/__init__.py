"""The model: mmseg configs and model zoo, checkpoints, the ONNX export and its exact rewrites, onnxsim,
the operation count, and the checks run on every model before any job."""
