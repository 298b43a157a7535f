"""The contract's JSON Schemas, generated from the TypeScript zod schemas (engine-torch/scripts/generate-schemas.ts)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_DIR = Path(__file__).parent / "schemas"


class ContractError(ValueError):
    """Input or output that does not match the TypeScript side's schema."""


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)  # type: ignore[no-any-return]


def validate(name: str, value: Any) -> None:
    """Raises ContractError naming the first few mismatches (path: message)."""
    errors = sorted(_validator(name).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        shown = "; ".join(f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:200]}" for e in errors[:5])
        raise ContractError(f"{name} does not match the workbench's schema: {shown}")
