"""config.yaml, the schema and the README's configuration table describe the same keys."""

import dataclasses
import re

import jsonschema
import pytest
import yaml

from ..conftest import REPO


def flat_keys(properties: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, spec in properties.items():
        if spec.get("type") == "object" and "properties" in spec:
            keys |= flat_keys(spec["properties"], f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def flat_config(config: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, value in config.items():
        keys |= flat_config(value, f"{prefix}{name}.") if isinstance(value, dict) else {prefix + name}
    return keys


SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())


def test_config_yaml_is_valid_and_lists_every_key():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    jsonschema.validate(config, SCHEMA)
    assert flat_config(config) == flat_keys(SCHEMA["properties"])


def test_every_schema_key_is_described():
    def walk(properties):
        for name, spec in properties.items():
            assert spec.get("description"), name
            assert "default" in spec, name
            if "properties" in spec:
                walk(spec["properties"])

    walk(SCHEMA["properties"])


def test_readme_configuration_table_matches_the_schema():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", section, flags=re.MULTILINE))
    assert documented == flat_keys(SCHEMA["properties"])


def test_conda_env_pins_the_requirements():
    """envs/deeplabv3.yaml (--use-conda) installs exactly requirements.txt's pins."""
    pinned = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    env = yaml.safe_load((REPO / "envs" / "deeplabv3.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert pip == [line for line in pinned if line and not line.startswith("#")]


def test_schema_backends_are_the_registry():
    """The schema lists no backend name (the registry's are checked at start); its precisions are the
    ones the registered backends run."""
    from deeplabv3_pipeline.backends import ALL_PRECISIONS, REGISTRY

    properties = SCHEMA["properties"]
    assert "enum" not in properties["backend"]
    assert set(properties["precision"]["enum"]) == set(ALL_PRECISIONS)
    # every registered backend that reads settings of its own (a config section under its name, found by
    # planning it without that section) has that section in the schema and config.yaml
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    with_settings = [name for name, spec in REGISTRY.items() if reads_own_section(name, spec, config)]
    assert "onnxruntime" in with_settings and "pytorch" not in with_settings  # the probe tells them apart
    for name in with_settings:
        assert name in properties and name in config, name


def schema_entry(key: str) -> dict:
    """The schema of a dotted config key (``ascend.ais_bench``)."""
    entry = SCHEMA
    for part in key.split("."):
        entry = entry["properties"][part]
    return entry


def test_backend_options_are_config_keys_with_one_default():
    """Each field of each backend's options record is read from a key the schema and config.yaml have;
    where the key is in the backend's own section, the schema's default is the record's (one default)."""
    from deeplabv3_pipeline.backends import REGISTRY
    from deeplabv3_pipeline.options import CONFIG_KEY, config_value

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    own_keys = 0
    for name, spec in REGISTRY.items():
        for field in dataclasses.fields(spec.options):
            key = field.metadata[CONFIG_KEY]
            entry = schema_entry(key)
            config_value(config, key)  # config.yaml has it
            if key.startswith(f"{name}."):
                default = list(field.default) if isinstance(field.default, tuple) else field.default
                assert entry["default"] == default, key
                own_keys += 1
    assert own_keys >= 4  # onnxruntime.providers, tensorrt.device, ascend.device, ascend.ais_bench


def test_the_variant_table_is_every_registered_backend_at_every_precision():
    """deeplabv3_pipeline.planning.variants' names: every registered backend at every precision it runs (and
    -winograd where it runs the ONNX graph), the benchmark's those of the backends on this CPU; the schema
    lists none of them (a backend's subpackage brings its own)."""
    from deeplabv3_pipeline.backends import REGISTRY
    from deeplabv3_pipeline.planning.variants import CPU_VARIANTS, ON_REQUEST, VARIANTS

    matrix = SCHEMA["properties"]["matrix"]["properties"]
    benchmark = SCHEMA["properties"]["benchmark"]["properties"]
    for entry in (
        matrix["variants"]["items"],
        matrix["reference"],
        benchmark["variants"]["items"],
        benchmark["reference"],
    ):
        assert "enum" not in entry
    assert set(ON_REQUEST) <= set(CPU_VARIANTS) < set(VARIANTS)
    for name, variant in VARIANTS.items():
        assert variant.precision in REGISTRY[variant.backend].precisions, name
        assert name == f"{variant.backend}-{variant.precision}" + ("-winograd" if variant.winograd else ""), name
    assert {(name, precision) for name, spec in REGISTRY.items() for precision in spec.precisions} == {
        (variant.backend, variant.precision) for variant in VARIANTS.values() if not variant.winograd
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "tensorflow"}, r"backend: unknown backend 'tensorflow': choose one of ascend, onnxruntime, "),
        ({"matrix": {"reference": "onnx-fp32"}}, r"matrix.reference: unknown variant 'onnx-fp32': choose from "),
        ({"benchmark": {"variants": ["tensorrt-fp16"]}}, r"benchmark.variants: 'tensorrt-fp16' is not a variant "),
        ({"benchmark": {"reference": "ascend-fp16"}}, r"benchmark.reference: 'ascend-fp16' is not a variant "),
    ],
)
def test_unregistered_names_are_refused_naming_the_valid_ones(settings, message):
    from deeplabv3_pipeline.errors import UserError
    from deeplabv3_pipeline.planning.variants import check_config_names

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in settings.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    with pytest.raises(UserError, match=message + ".*pytorch"):  # the valid names are listed
        check_config_names(config)


def reads_own_section(name: str, spec, config: dict) -> bool:
    """Whether planning or running ``name`` reads ``config[name]``."""
    from deeplabv3_pipeline.backends import backend_flags

    without = {key: value for key, value in config.items() if key != name}
    try:
        backend_flags(name, without)
        for precision in spec.precisions:
            spec.model_steps(precision, without)
        spec.extra_targets(spec.default_precision, without)
    except KeyError as error:
        if error.args == (name,):
            return True
        raise
    return False
