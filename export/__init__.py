"""i2i.export: model.pt → ONNX (fp32/fp16, tensor or frame I/O, static or dynamic shapes, card,
parity report) → TensorRT engine + sidecar → Triton model repository; ``inspect``."""
