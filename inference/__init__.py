"""Stateless detection workers: decode, micro-batch, run the model, publish detections."""
