"""Exports of a trained network: weights files (npz, safetensors); ONNX and PyTorch code later."""
from engine.export.weights import load_weights, save_weights

__all__ = ["load_weights", "save_weights"]
