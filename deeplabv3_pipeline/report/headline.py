"""The few lines a person reads after a run: mIoU, speed, and whether the inputs were synthetic."""

from __future__ import annotations


def headline(result: dict) -> str:
    """A result.json as 1-3 lines of text."""
    # the cell (model x variant) where the result names it, else the backend
    cell = "/".join(filter(None, [result.get("model"), result.get("variant")])) or result.get("backend")
    lines = [
        f"{cell or 'predictions'} ({result['num_images']} images): "
        f"mIoU {result['mIoU']}  aAcc {result['aAcc']}  mAcc {result['mAcc']}",
    ]
    speed = result.get("throughput") or {}
    if speed.get("compute_images_per_s"):
        lines.append(
            f"speed: {speed['compute_images_per_s']:.3f} images/s compute only, "
            f"{speed['end_to_end_images_per_s']:.3f} images/s end to end"
        )
    if result.get("synthetic_inputs"):
        lines.append(f"SYNTHETIC {result['synthetic_inputs']}: this mIoU says nothing about the model on Cityscapes")
    return "\n".join(lines)


def cell_line(result: dict) -> str:
    """A cell's result.json as one line (the closing summary of a run of several cells)."""
    cell = "/".join(filter(None, [result.get("model"), result.get("variant")])) or result.get("backend")
    speed = (result.get("throughput") or {}).get("compute_images_per_s")
    line = f"{cell} ({result['num_images']} images): mIoU {result['mIoU']}  aAcc {result['aAcc']}"
    return line + (f"  {speed:.3f} images/s compute only" if speed else "")
