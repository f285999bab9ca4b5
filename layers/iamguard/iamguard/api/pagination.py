"""Opaque page tokens: where to resume a DynamoDB read, bound to the query that produced them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping

from iamguard.api.errors import BadRequest

_KEY_NAMES = {"pk", "sk", "gsi1pk", "gsi1sk"}


def query_fingerprint(**filters: object) -> str:
    """A short digest of the filters a token is valid for."""
    canonical = json.dumps({k: str(v) for k, v in filters.items() if v is not None}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def encode_token(key: Mapping[str, str], fingerprint: str) -> str:
    raw = json.dumps({"k": dict(key), "q": fingerprint}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, fingerprint: str) -> dict[str, str]:
    """The resume key inside `token`; BadRequest if it is malformed or from another query."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("next_token is not a token this API issued") from exc
    if not isinstance(data, dict) or not isinstance(data.get("k"), dict):
        raise BadRequest("next_token is not a token this API issued")
    key = data["k"]
    if (
        not key
        or not set(key) <= _KEY_NAMES
        or not {"pk", "sk"} <= set(key)
        or not all(isinstance(value, str) and value for value in key.values())
    ):
        raise BadRequest("next_token is not a token this API issued")
    if data.get("q") != fingerprint:
        raise BadRequest("next_token belongs to a query with other filters; repeat the same filters")
    return {str(name): str(value) for name, value in key.items()}
