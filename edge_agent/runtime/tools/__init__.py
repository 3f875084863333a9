"""Workstation and commissioning tools (INT8 quantization, evaluation, TensorRT engine builds).

The daemon never imports these at start: it loads a bundle and infers. The engine build is the one
exception, imported lazily when a box has a GPU and no engine for it yet.
"""
