"""mmsegmentation's segmentation metric, from a confusion matrix summed over the whole set.

mmseg's ``intersect_and_union`` drops ignored pixels, then counts per class the
intersection, the predicted area and the labelled area; the IoU metric sums these over
all images before dividing (not a mean of per-image IoUs). All of them are sums of a
confusion matrix: intersection = diagonal, labelled area = row sums, predicted area =
column sums. Keeping the matrix costs 19x19 integers and also feeds the report.
"""

from __future__ import annotations

import numpy as np

from deeplabv3_pipeline.errors import UserError


def pixel_agreement(predictions: np.ndarray, reference: np.ndarray) -> float:
    """Share of pixels whose class equals the reference's (two predictions of one shape). The one
    measure of agreement: the matrix, the benchmark, and the int8 and Winograd checks use it."""
    if predictions.shape != reference.shape:
        raise ValueError(f"predictions {predictions.shape} and reference {reference.shape} differ in shape")
    return float(np.mean(predictions == reference))


def confusion_matrix(prediction: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Counts[label class, predicted class] over the pixels whose label is not ``ignore_index``."""
    if prediction.shape != label.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from label shape {label.shape}")
    keep = label != ignore_index
    truth = label[keep].astype(np.int64)
    predicted = prediction[keep].astype(np.int64)
    if truth.size and (truth.min() < 0 or truth.max() >= num_classes):
        raise UserError(f"label holds class ids outside 0..{num_classes - 1} and {ignore_index}")
    if predicted.size and (predicted.min() < 0 or predicted.max() >= num_classes):
        raise UserError(f"prediction holds class ids outside 0..{num_classes - 1}: is it the model's output?")
    counts = np.bincount(truth * num_classes + predicted, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / denominator  # 0/0 -> nan: a class absent from labels and predictions


def mean_iou(confusion: np.ndarray) -> float | None:
    """mIoU in percent, unrounded: the nanmean of the classes' IoU (a class absent from labels and
    predictions counts for nothing); None where no class is present."""
    confusion = confusion.astype(np.float64)
    intersect = np.diag(confusion)
    iou = _ratio(intersect, confusion.sum(axis=1) + confusion.sum(axis=0) - intersect)
    return None if np.all(np.isnan(iou)) else float(np.nanmean(iou)) * 100


def summarize(confusion: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """aAcc, mIoU, mAcc (percent, 2 decimals, as mmseg prints them) and per-class IoU and Acc."""
    confusion = confusion.astype(np.float64)
    intersect = np.diag(confusion)
    area_label = confusion.sum(axis=1)
    area_pred = confusion.sum(axis=0)
    iou = _ratio(intersect, area_label + area_pred - intersect)
    accuracy = _ratio(intersect, area_label)
    total = area_label.sum()

    def percent(value: float) -> float | None:
        return None if np.isnan(value) else round(float(value) * 100, 2)

    return {
        "aAcc": percent(intersect.sum() / total if total else np.nan),
        "mIoU": None if (miou := mean_iou(confusion)) is None else round(miou, 2),
        "mAcc": percent(np.nanmean(accuracy)) if not np.all(np.isnan(accuracy)) else None,
        "per_class": {
            name: {
                "IoU": percent(iou[index]),
                "Acc": percent(accuracy[index]),
                "label_pixels": int(area_label[index]),
                "predicted_pixels": int(area_pred[index]),
            }
            for index, name in enumerate(class_names)
        },
    }
