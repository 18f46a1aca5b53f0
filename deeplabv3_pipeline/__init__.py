"""Shared code of the DeepLabV3 (mmsegmentation R50-D8, Cityscapes) validation workflow.

Each stage of the workflow is a CLI in ``scripts/``; the logic they share lives here:
the Cityscapes conventions, the guide's preprocessing, the metric, the raw ``.bin`` I/O,
the mmsegmentation model and the inference backends.
"""
