import numpy as np
import pytest

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.evaluation.metrics import confusion_matrix, summarize

NAMES = ("a", "b", "c")


def test_hand_computed_case():
    label = np.array([[0, 0, 1], [1, 255, 2]])
    prediction = np.array([[0, 1, 1], [1, 2, 0]])
    matrix = confusion_matrix(prediction, label, 3, 255)
    # labelled pixels: (0->0), (0->1), (1->1), (1->1), (2->0); the 255 pixel is ignored
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    result = summarize(matrix, NAMES)
    # IoU a = 1/(2+2-1) = 1/3, b = 2/(2+3-2) = 2/3, c = 0/(1+0-0) = 0
    assert result["per_class"]["a"]["IoU"] == 33.33
    assert result["per_class"]["b"]["IoU"] == 66.67
    assert result["per_class"]["c"]["IoU"] == 0.0
    assert result["mIoU"] == round((1 / 3 + 2 / 3 + 0) / 3 * 100, 2)
    assert result["aAcc"] == 60.0


def test_class_absent_everywhere_is_nan_and_left_out_of_the_mean():
    label = np.array([0, 0, 1])
    prediction = np.array([0, 0, 1])
    result = summarize(confusion_matrix(prediction, label, 3, 255), NAMES)
    assert result["per_class"]["c"]["IoU"] is None
    assert result["mIoU"] == 100.0


def mmseg_reference(predictions, labels, num_classes, ignore_index):
    """mmseg's intersect_and_union summed over images, written independently with per-class loops."""
    intersect = np.zeros(num_classes)
    union = np.zeros(num_classes)
    area_label = np.zeros(num_classes)
    for prediction, label in zip(predictions, labels, strict=True):
        mask = label != ignore_index
        p, t = prediction[mask], label[mask]
        for c in range(num_classes):
            i = np.sum((p == c) & (t == c))
            intersect[c] += i
            union[c] += np.sum(p == c) + np.sum(t == c) - i
            area_label[c] += np.sum(t == c)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = intersect / union
    return round(float(np.nanmean(iou)) * 100, 2), round(intersect.sum() / area_label.sum() * 100, 2)


def test_metric_against_independent_computation_on_random_data():
    rng = np.random.default_rng(42)
    predictions = [rng.integers(0, 19, (37, 53)) for _ in range(5)]
    labels = []
    for prediction in predictions:
        label = np.where(rng.random(prediction.shape) < 0.6, prediction, rng.integers(0, 19, prediction.shape))
        label[rng.random(prediction.shape) < 0.1] = 255
        labels.append(label)
    total = sum(confusion_matrix(p, t, 19, 255) for p, t in zip(predictions, labels, strict=True))
    names = tuple(str(i) for i in range(19))
    result = summarize(total, names)
    assert (result["mIoU"], result["aAcc"]) == mmseg_reference(predictions, labels, 19, 255)
    assert 30 < result["mIoU"] < 90  # a non-trivial case: neither all right nor all wrong


def test_out_of_range_prediction_is_an_error():
    with pytest.raises(UserError, match="prediction holds class ids outside"):
        confusion_matrix(np.array([0, 19]), np.array([0, 1]), 19, 255)
