"""What every JSON file of a model directory shares: :class:`ModelDirError` (one line, the path
and the reason) and reading/writing a JSON object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class ModelDirError(ValueError):
    """A model directory is missing a file, has an unknown schema or inconsistent content."""


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; :class:`ModelDirError` if it is missing or not an object."""
    if not path.is_file():
        raise ModelDirError(f"model directory {path.parent} lacks {path.name}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelDirError(f"{path} must hold a JSON object")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
