"""What every settings model shares: the error, the ARN and list types, and the environment source.

Each field names its environment variable once, as its `validation_alias`
(the name template.yaml sets); `EnvironSource` reads those names, flat, for the
nested sub-models too. A blank variable means "the default".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


class ConfigError(ValueError):
    """Raised when the environment holds an invalid setting (reported at cold start)."""


def _iam_arn(kind: str) -> AfterValidator:
    def check(arn: str) -> str:
        if not arn.startswith("arn:aws") or f":{kind}/" not in arn:
            raise ValueError(f"not an IAM {kind} ARN: {arn!r}")
        return arn

    return AfterValidator(check)


def _comma_separated(value: Any) -> Any:
    return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value


PolicyArn = Annotated[str, _iam_arn("policy")]
RoleArn = Annotated[str, _iam_arn("role")]
CommaSeparated = BeforeValidator(_comma_separated)  # "a, b,,c" -> ("a", "b", "c")


class EnvironSource(PydanticBaseSettingsSource):
    """Each field from the variable its `validation_alias` names; sub-models from their fields' variables."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole model at once

    def __call__(self) -> dict[str, Any]:
        return _read(self.settings_cls, self.environ)


def _read(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            nested = _read(field.annotation, environ)
            if nested:
                values[name] = nested
        elif isinstance(field.validation_alias, str) and environ.get(field.validation_alias, "").strip():
            values[name] = environ[field.validation_alias].strip()
    return values


def config_error(model: type[BaseModel], exc: ValidationError) -> ConfigError:
    """`mode (MODE): Input should be 'monitor' or 'enforce'; ...` - the field and the variable to fix."""
    problems = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        variable = _variable(model, error["loc"])
        problems.append(f"{path} ({variable}): {error['msg']}" if variable else f"{path}: {error['msg']}")
    return ConfigError(f"invalid iamguard settings: {'; '.join(problems)}")


def _variable(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
            continue
        return field.validation_alias if isinstance(field.validation_alias, str) else None
    return None
