"""Exports of a network: weights files (npz, safetensors), PyTorch code, an ONNX model."""
from layerloom.engine.export.weights import load_weights, save_weights

__all__ = ["load_weights", "save_weights"]
