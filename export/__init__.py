"""i2i.export: model.pt → ONNX (dynamic shapes, model card, parity report)."""
