"""The published OCSF schema, as a JSON Schema validator for what iamguard writes.

The schema comes from the `ocsf-json-schema` package (a dev dependency), which ships the OCSF
project's own exports (schema.ocsf.io/<version>/export/schema) for 1.0.0-1.8.0 and turns a class
(with its profiles) into JSON Schema draft 2020-12. Nothing here is a hand-copy of the schema.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema, get_packaged_versions


@cache
def _schema(version: str) -> OcsfJsonSchemaEmbedded:
    assert version in get_packaged_versions(), f"ocsf-json-schema ships no OCSF {version}"
    return OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))


@cache
def class_validator(version: str, class_uid: int, profiles: tuple[str, ...]) -> Draft202012Validator:
    schema = _schema(version)
    class_schema = schema.get_class_schema(schema.lookup_class_name_from_uid(class_uid), list(profiles))
    Draft202012Validator.check_schema(class_schema)
    return Draft202012Validator(class_schema)


def ocsf_errors(event: dict[str, Any]) -> list[str]:
    """Every way `event` breaks the OCSF schema of its own metadata.version, class_uid and metadata.profiles."""
    metadata = event.get("metadata") or {}
    validator = class_validator(
        str(metadata.get("version")), int(event.get("class_uid", 0)), tuple(sorted(metadata.get("profiles") or ()))
    )
    return sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(event)
    )
