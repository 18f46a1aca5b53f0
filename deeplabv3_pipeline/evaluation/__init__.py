"""Evaluation: the metric, result.json's record, the pixel agreement of two models, and provenance."""
