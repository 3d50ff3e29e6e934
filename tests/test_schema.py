"""train/schema.py: one definition per config field, validation, upgrade."""

from __future__ import annotations

import ml_collections
import pytest
from train_utils import tiny_config

from train import schema
from train.configs import default, gpu, paper, quick


def test_every_config_file_validates_and_holds_exactly_the_schema_fields():
    configs = [default.get_config(), quick.get_config(), gpu.get_config(), gpu.get_config("paper")]
    configs += [paper.get_config(name) for name in paper.EXPERIMENTS]
    for config in configs:
        schema.validate(config)
        assert set(config.keys()) == set(schema.FIELDS) | {"model"}


def test_defaults_are_the_fields_defaults():
    config = schema.defaults()
    for name, field in schema.FIELDS.items():
        assert config[name] == field.default
        assert field.ok(field.default), name


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("lr", 0.0, "config.lr=0.0: the learning rate must be > 0"),
        ("optimizer", "lamb", "config.optimizer='lamb': must be one of ['sgd', 'adam', 'adamw']"),
        ("lr", float("nan"), "config.lr=nan: must be a finite number"),
        ("seed", 2**32, "config.seed=4294967296: must be an integer in [0, 2**32)"),
        ("batch_size", 1.5, "config.batch_size=1.5: must be a positive integer"),
        ("eval_flip", 1, "config.eval_flip=1: must be true or false"),
        ("momentum", 1.0, "config.momentum=1.0: must be in [0, 1)"),
        ("input", "disk", "config.input='disk': must be one of ['auto', 'grain', 'device']"),
    ],
)
def test_bad_values_name_the_field(field, value, message):
    config = ml_collections.ConfigDict({**tiny_config().to_dict(), field: value})
    with pytest.raises(schema.ConfigError) as error:
        schema.validate(config)
    assert str(error.value) == message


def test_unknown_and_missing_fields_are_refused():
    config = tiny_config()
    config.colour = "blue"
    with pytest.raises(schema.ConfigError, match=r"^config.colour: unknown field"):
        schema.validate(config)
    del config["colour"]
    del config["lr"]
    with pytest.raises(schema.ConfigError, match=r"^config.lr: missing"):
        schema.validate(config)


def test_model_is_validated_by_the_library():
    config = tiny_config(model_fusion="sum-of-squares")
    with pytest.raises(schema.ConfigError, match=r"^config.model: .*fusion"):
        schema.validate(config)


def test_upgrade_fills_added_fields_with_the_old_behaviour():
    stored = schema.config_to_dict(tiny_config())
    for name in ("input", "validation_examples", "data_parallel", "stem_whitening_eps"):
        del stored[name]  # a config written before these fields existed
    upgraded = schema.upgrade(stored)
    assert upgraded["input"] == "grain" and upgraded["validation_examples"] == 0
    assert upgraded["data_parallel"] == "gspmd" and upgraded["stem_whitening_eps"] == 5e-4
    assert set(upgraded) == set(schema.FIELDS) | {"model"}


def test_added_fields_compare_as_their_old_behaviour_on_resume():
    now = tiny_config(data_parallel="gspmd", stem_whitening=0, validation_examples=0)
    saved = schema.config_to_dict(now)
    for name in ("data_parallel", "stem_whitening", "validation_examples"):
        del saved[name]
    assert schema.config_differences(saved, schema.config_to_dict(now)) == []
    now.data_parallel = "local"
    assert schema.config_differences(saved, schema.config_to_dict(now)) == [
        "data_parallel: 'gspmd' -> 'local'"
    ]


def test_run_control_fields_are_the_schema_s():
    assert "time_limit_s" in schema.RUN_CONTROL_FIELDS and "lr" not in schema.RUN_CONTROL_FIELDS
    saved = schema.config_to_dict(tiny_config())
    now = tiny_config(time_limit_s=60.0, keep_checkpoints=7)
    assert schema.config_differences(saved, schema.config_to_dict(now)) == []
