"""config.yaml, the schema and the README's configuration table describe the same keys."""

import re

import jsonschema
import yaml

from .conftest import REPO


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
    """The backend names and precisions the schema accepts are those of deeplabv3_pipeline.backends.REGISTRY."""
    from deeplabv3_pipeline.backends import ALL_PRECISIONS, BACKENDS, REGISTRY

    properties = SCHEMA["properties"]
    assert properties["backend"]["enum"] == list(BACKENDS)
    assert set(properties["precision"]["enum"]) == set(ALL_PRECISIONS)
    # every registered backend that reads settings of its own (a config section under its name, found by
    # planning it without that section) has that section in the schema and config.yaml
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    with_settings = [name for name, spec in REGISTRY.items() if reads_own_section(name, spec, config)]
    assert "onnxruntime" in with_settings and "pytorch" not in with_settings  # the probe tells them apart
    for name in with_settings:
        assert name in properties and name in config, name


def test_schema_variants_are_the_variant_table():
    """The matrix's variant names in the schema are deeplabv3_pipeline.variants' (every registered
    backend at every precision it runs), the benchmark's those of the backends on this CPU."""
    from deeplabv3_pipeline.backends import REGISTRY
    from deeplabv3_pipeline.variants import CPU_VARIANTS, ON_REQUEST, VARIANTS

    matrix = SCHEMA["properties"]["matrix"]["properties"]
    assert matrix["variants"]["items"]["enum"] == matrix["reference"]["enum"] == list(VARIANTS)
    benchmark = SCHEMA["properties"]["benchmark"]["properties"]
    assert benchmark["variants"]["items"]["enum"] == benchmark["reference"]["enum"] == list(CPU_VARIANTS)
    assert set(ON_REQUEST) <= set(CPU_VARIANTS) < set(VARIANTS)
    for name, variant in VARIANTS.items():
        assert variant.precision in REGISTRY[variant.backend].precisions, name
        assert name == f"{variant.backend}-{variant.precision}" + ("-winograd" if variant.winograd else ""), name
    assert {name for name, spec in REGISTRY.items() for precision in spec.precisions} == {
        variant.backend for variant in VARIANTS.values()
    }


def reads_own_section(name: str, spec, config: dict) -> bool:
    """Whether planning or running ``name`` reads ``config[name]``."""
    without = {key: value for key, value in config.items() if key != name}
    try:
        spec.infer_args(without)
        for precision in spec.precisions:
            spec.model_steps(precision, without)
        spec.extra_targets(spec.default_precision, without)
    except KeyError as error:
        if error.args == (name,):
            return True
        raise
    return False
