"""The start checks' models print no library warnings; other warnings still show."""

import warnings

from torch.jit import TracerWarning

from deeplabv3_pipeline.model.model_checks import quiet_library_warnings


def warn_from(module: str, message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` called from code of ``module`` (as mmseg's own ``warnings.warn`` calls are)."""
    code = compile("import warnings\nwarnings.warn(message, category)", f"<{module}>", "exec")
    exec(code, {"__name__": module, "message": message, "category": category})


def shown(emit) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emit()
    return [str(warning.message) for warning in caught]


def test_library_and_tracer_warnings_are_silenced_others_shown():
    def emit():
        with quiet_library_warnings():
            warn_from("mmseg.models.builder", "build_loss would be deprecated soon")
            warn_from("mmengine.config.config", "old config key", DeprecationWarning)
            warn_from("torch.onnx.utils", "constant folding skipped")
            # the tracer's warning names the traced line: ours (deeplabv3_pipeline.model.pooling) or mmseg's
            warn_from("deeplabv3_pipeline.model.pooling", "Converting a tensor to a Python integer", TracerWarning)
            warn_from("deeplabv3_pipeline.planning.plan", "a warning of the workflow's own")
            warn_from("mmsegmentation_fork", "not one of the libraries")

    assert shown(emit) == ["a warning of the workflow's own", "not one of the libraries"]


def test_the_filters_are_restored_on_exit():
    def emit():
        with quiet_library_warnings():
            pass
        warn_from("mmseg.models.builder", "build_loss would be deprecated soon")
        warn_from("deeplabv3_pipeline.model.pooling", "Converting a tensor to a Python integer", TracerWarning)

    assert len(shown(emit)) == 2
