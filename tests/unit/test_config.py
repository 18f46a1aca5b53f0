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
    assert "pytorch" in with_settings and "openvino" not in with_settings  # the probe tells them apart
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
    -winograd where it runs the ONNX graph, -mixed at its MIXED_PRECISIONS), the benchmark's those of the
    backends on this CPU; the schema lists none of them (a backend's subpackage brings its own)."""
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
        suffix = "-winograd" if variant.winograd else "-mixed" if variant.mixed else ""
        assert name == f"{variant.backend}-{variant.precision}{suffix}", name
    assert {(name, precision) for name, spec in REGISTRY.items() for precision in spec.precisions} == {
        (variant.backend, variant.precision) for variant in VARIANTS.values() if not variant.winograd
    }
    assert (
        {(name, precision) for name, spec in REGISTRY.items() for precision in spec.mixed_precisions}
        == {(variant.backend, variant.precision) for variant in VARIANTS.values() if variant.mixed}
        == {
            ("onnxruntime", "int8"),
            ("openvino", "int8"),
            ("tensorrt", "int8"),
            ("tensorrt", "fp16"),
            ("ascend", "fp16"),
        }
    )


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


def config_with(**sections: object) -> dict:
    """config.yaml with ``sections`` merged in (a dict into its section, anything else replacing the key)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    return config


TINY_CONFIG = "deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024"
BAD_CONFIGS = {
    "misspelt key": config_with(model={"input_shpae": [64, 128]}),
    "misplaced key": config_with(input_shape=[64, 128]),
    "unknown key": config_with(model={"xyzzy": 1}),
    "shape as a string": config_with(model={"input_shape": "512x1024"}),
    "shape too small": config_with(model={"input_shape": [16, 16]}),
    "enum": config_with(precision="fp64"),
    "nullable enum": config_with(model={"test_mode": "wole"}),
    "missing in a list entry": config_with(
        matrix={"models": [{"name": "r18", "config": TINY_CONFIG}, {"name": "r18b"}]}
    ),
    "pattern in a list entry": config_with(matrix={"models": [{"name": "r18 model", "config": TINY_CONFIG}]}),
    "oneOf": config_with(resources={"export_onnx": {"mem_mb": 50, "runtime": "auto"}}),
    "section not a mapping": config_with(model=None),
}


def problem(name: str) -> str:
    from deeplabv3_pipeline.config_check import config_problem

    message = config_problem(BAD_CONFIGS[name], SCHEMA)
    assert message is not None, name
    return message


def test_the_default_config_has_no_problem_and_passes_the_check():
    from deeplabv3_pipeline.config_check import check_config, config_problem

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert config_problem(config, SCHEMA) is None
    assert config_problem({}, SCHEMA) is None  # every key has a default
    check_config(config, REPO / "schemas" / "config.schema.yaml")


def test_check_config_raises_a_user_error_of_the_problem():
    from deeplabv3_pipeline.config_check import check_config
    from deeplabv3_pipeline.errors import UserError

    with pytest.raises(UserError, match=r"^config key model\.input_shpae is unknown"):
        check_config(BAD_CONFIGS["misspelt key"], REPO / "schemas" / "config.schema.yaml")


def test_a_misspelt_key_names_the_key_meant():
    assert problem("misspelt key") == "config key model.input_shpae is unknown: did you mean model.input_shape?"


def test_a_key_in_the_wrong_section_names_its_full_path():
    assert problem("misplaced key") == "config key input_shape is unknown: did you mean model.input_shape?"


def test_an_unknown_key_nothing_is_close_to_lists_its_sections_keys():
    message = problem("unknown key")
    assert message.startswith("config key model.xyzzy is unknown: the keys of model are name, config, ")
    assert "input_shape" in message and "did you mean" not in message


def test_a_shape_given_as_a_string_names_the_key_the_form_and_an_example():
    message = problem("shape as a string")
    assert message.startswith("config key model.input_shape is '512x1024': expected a list of two integers [H, W]")
    assert "or null" in message and message.endswith("e.g. [1024, 2048]")
    # an item out of bounds names the key, not the item, and the bound
    assert problem("shape too small").startswith("config key model.input_shape is [16, 16]: ")
    assert "at least 32" in problem("shape too small")


def test_an_enum_names_the_valid_values():
    assert (
        problem("enum") == "config key precision is 'fp64': expected one of fp32, fp16, bf16, int8 (did you mean fp16?)"
    )
    assert problem("nullable enum") == (
        "config key model.test_mode is 'wole': expected null, whole or slide (did you mean whole?)"
    )


def test_a_list_entry_is_named_with_its_index():
    assert problem("missing in a list entry") == (
        "config key matrix.models[1].config is missing: each entry of matrix.models needs name and config"
    )
    message = problem("pattern in a list entry")
    assert message.startswith("config key matrix.models[0].name is 'r18 model': expected a string of letters, digits")


def test_one_of_names_every_form():
    assert problem("oneOf") == (
        "config key resources.export_onnx.mem_mb is 50: expected an integer of at least 100 or auto, e.g. auto"
    )
    assert problem("section not a mapping").startswith("config key model is null: expected a section with keys name, ")


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_each_problem_is_one_short_line(name):
    message = problem(name)
    assert "\n" not in message and len(message) < 250, message


def test_every_test_scenario_is_a_valid_config_over_the_tiny_one():
    """.test/<scenario>/config.yaml: valid against the schema, each the tiny scenario plus its own keys
    (so that the tests' runs share the tiny run's files), and listed in .test/README.md."""
    from ..helpers import SCENARIOS, TINY, merged, scenario

    names = sorted(path.parent.name for path in SCENARIOS.glob("*/config.yaml"))
    assert {"tiny", "matrix", "ascend", "zoo_support"} <= set(names)
    listed = (SCENARIOS / "README.md").read_text()
    for name in names:
        config = scenario(name)
        jsonschema.validate(config, SCHEMA)
        assert merged(TINY, config) == config, name
        assert f"| `{name}` |" in listed, name
