"""Translate a SAM template to the CloudFormation that `sam deploy` creates; print it as JSON.

Runs under .venv-sam's Python (aws-sam-translator lives there, beside aws-sam-cli):

    .venv-sam/bin/python tests/support/sam_translate.py template.yaml [Name=value ...]

The translation is offline: managed policy names resolve through the map bundled
with the translator, and nothing calls AWS. Parameters default to the template's
own defaults; `Name=value` arguments override them (as `sam deploy
--parameter-overrides` would).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    # aws-sam-translator is installed in .venv-sam only (mypy runs from .venv).
    from samtranslator.translator.managed_policy_translator import (  # type: ignore[import-not-found]
        ManagedPolicyLoader,
    )
    from samtranslator.translator.transform import transform  # type: ignore[import-not-found]
    from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-not-found]

    class OfflineLoader(ManagedPolicyLoader):  # type: ignore[misc]
        """Only the translator's bundled map; never IAM."""

        def __init__(self) -> None:
            pass

        def load(self) -> dict[str, str]:
            return {}

    # The one Fn::ForEach expander (the local runtime's), importable without installing the CLI.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cli"))
    from iamguard_cli.local.cfn import expand_for_each

    template: dict[str, Any] = yaml_parse(Path(argv[1]).read_text(encoding="utf-8"))
    overrides = dict(arg.split("=", 1) for arg in argv[2:])
    parameters = {
        name: overrides.get(name, spec.get("Default"))
        for name, spec in template.get("Parameters", {}).items()
        if name in overrides or "Default" in spec
    }
    # Fn::ForEach (AWS::LanguageExtensions) expanded first, as CloudFormation runs that transform first.
    template = expand_for_each(template)
    _placeholder_local_uris(template)
    translated = transform(template, parameters, OfflineLoader())
    json.dump(translated, sys.stdout, indent=1, sort_keys=True, default=str)
    return 0


# Properties that `sam package` replaces by S3 locations (what `sam validate` does too).
_LOCAL_URIS = {
    "AWS::Serverless::Function": ("CodeUri",),
    "AWS::Serverless::LayerVersion": ("ContentUri",),
    "AWS::Serverless::Api": ("DefinitionUri",),
    "AWS::Serverless::HttpApi": ("DefinitionUri",),
    "AWS::Serverless::StateMachine": ("DefinitionUri",),
}


def _placeholder_local_uris(template: dict[str, Any]) -> None:
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for name in _LOCAL_URIS.get(resource.get("Type", ""), ()):
            if isinstance(properties.get(name), str) and not properties[name].startswith("s3://"):
                properties[name] = "s3://bucket/local-path"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
