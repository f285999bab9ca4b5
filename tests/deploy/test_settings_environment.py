"""The variables template.yaml gives each function are the ones the settings model reads, and they parse."""

from __future__ import annotations

from typing import Any

import pytest
from iamguard.settings import Settings
from pydantic import BaseModel

from tests.support.template import function_environment, functions

FUNCTIONS = functions()
# Read by the Lambda runtime, Powertools or the SDK, not by iamguard's settings.
RUNTIME_VARIABLES = {"LOG_LEVEL"}
RUNTIME_PREFIXES = ("POWERTOOLS_", "AWS_")


def variables(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for field in model.model_fields.values():
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= variables(annotation)
        elif isinstance(field.validation_alias, str):
            names.add(field.validation_alias)
    return names


@pytest.mark.parametrize("source", FUNCTIONS, ids=[f.logical_id for f in FUNCTIONS])
def test_every_variable_a_function_gets_is_a_setting_and_parses(source: Any) -> None:
    env = function_environment(source.logical_id)
    unknown = {
        name
        for name in env
        if name not in RUNTIME_VARIABLES and not name.startswith(RUNTIME_PREFIXES) and name not in variables(Settings)
    }
    assert unknown == set(), "set in template.yaml but read by no setting (a typo?)"
    settings = Settings.from_env(env)  # the stack's defaults pass validation
    assert settings.findings_table == env["FINDINGS_TABLE"]
