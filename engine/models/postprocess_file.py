"""``postprocess.json``: the science parameters of a model directory's post-processing.

The tracker's parameters (:class:`~engine.instances.TrackerConfig`: gap tolerance, size
filters, spark splitting, context) and the characterization's
(:class:`~engine.characterize.CharacterizeConfig`) belong to the model, like its thresholds:
the tuning that chooses a value writes it here, with the command in ``provenance``. Layout::

    {
      "schema_version": 1,
      "tracker": {TrackerConfig field: value, ...},
      "characterize": {CharacterizeConfig field: value, ...},
      "tracker_overrides": {"hybrid": {TrackerConfig field: value, ...}},
      "provenance": {"tracker_overrides.hybrid.split_dip_sd": "command: what it measured"},
      "notes": ["free text", ...]
    }

``tracker_overrides`` holds tracker values chosen with one detector (``network``, ``hybrid``
or ``classical``) and applied only when that detector runs: ``split_dip_sd`` was chosen with
the hybrid, and the network alone keeps Dotti's peak distances. ``provenance`` maps a value's
dotted key to the command that chose it and what it measured.

A missing file, section or field is the code's default, so directories written before this
file keep working; an unknown key or a wrong type is a one-line :class:`ModelDirError` naming
the file and the key. A directory without ``postprocess.json`` whose ``hybrid.json`` still
holds ``split_dip_sd`` (where it lived before) gets it as the hybrid's override.
"""

from __future__ import annotations

import logging
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..characterize import CharacterizeConfig
from ..instances import KIND_OF_CLASS, TrackerConfig
from .json_files import ModelDirError, read_json, write_json

log = logging.getLogger(__name__)

POSTPROCESS_FILE = "postprocess.json"
SCHEMA_VERSION = 1
DETECTORS = ("network", "hybrid", "classical")
EVENT_KINDS = frozenset(KIND_OF_CLASS.values())
#: ``hybrid.json`` keys that moved here: directories without ``postprocess.json`` still work
LEGACY_HYBRID_KEYS = ("split_dip_sd",)
TOP_LEVEL_KEYS = ("schema_version", "tracker", "characterize", "tracker_overrides",
                  "provenance", "notes")


@dataclass(frozen=True)
class PostprocessParams:
    """Content of ``postprocess.json`` (module docstring); the defaults are the code's."""

    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    characterize: CharacterizeConfig = field(default_factory=CharacterizeConfig)
    tracker_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def tracker_for(self, detector: str) -> TrackerConfig:
        """The tracker's parameters when ``detector`` (``network`` | ``hybrid`` |
        ``classical``) runs: :attr:`tracker` with that detector's overrides."""
        _check_detector(detector)
        return replace(self.tracker, **self.tracker_overrides.get(detector, {}))

    def with_override(self, detector: str, name: str, value: Any,
                      provenance: str) -> PostprocessParams:
        """A copy where ``detector`` runs the tracker with ``name`` = ``value``, recorded in
        :attr:`provenance` (``provenance``: the command that chose it and what it measured)."""
        _check_detector(detector)
        value = _check_value(_tracker_field(name), value, f"tracker_overrides.{detector}.{name}")
        overrides = {**self.tracker_overrides,
                     detector: {**self.tracker_overrides.get(detector, {}), name: value}}
        key = f"tracker_overrides.{detector}.{name}"
        return replace(self, tracker_overrides=overrides,
                       provenance={**self.provenance, key: provenance})

    def to_dict(self) -> dict[str, Any]:
        tracker = asdict(self.tracker)
        tracker["split_off_kinds"] = list(self.tracker.split_off_kinds)
        tracker["wave_split_off_kinds"] = list(self.tracker.wave_split_off_kinds)
        return {"schema_version": SCHEMA_VERSION, "tracker": tracker,
                "characterize": asdict(self.characterize),
                "tracker_overrides": {k: dict(v) for k, v in self.tracker_overrides.items()},
                "provenance": dict(self.provenance), "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = POSTPROCESS_FILE
                  ) -> PostprocessParams:
        """Parse and check a ``postprocess.json`` object (errors name ``source`` and the key)."""
        where = str(source)
        unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
        if unknown:
            raise ModelDirError(f"{where}: unknown key {unknown[0]!r} "
                                f"(known: {', '.join(TOP_LEVEL_KEYS)})")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ModelDirError(f"{where}: schema_version {version!r} is not supported "
                                f"(this castream reads {SCHEMA_VERSION})")
        return cls(
            tracker=TrackerConfig(**_section(TrackerConfig, data.get("tracker", {}),
                                             where, "tracker")),
            characterize=CharacterizeConfig(**_section(CharacterizeConfig,
                                                       data.get("characterize", {}),
                                                       where, "characterize")),
            tracker_overrides=_overrides(data.get("tracker_overrides", {}), where),
            provenance=_strings(data.get("provenance", {}), where, "provenance", dict),
            notes=tuple(_strings(data.get("notes", []), where, "notes", list)))

    @classmethod
    def load(cls, model_path: str | Path) -> PostprocessParams:
        """``postprocess.json`` of a model directory; the defaults (and ``hybrid.json``'s legacy
        ``split_dip_sd``) when it has none."""
        model_path = Path(model_path)
        path = model_path / POSTPROCESS_FILE
        legacy = _legacy_hybrid_values(model_path)
        if not path.is_file():
            if legacy:
                log.info("%s: no %s; using %s from hybrid.json", model_path, POSTPROCESS_FILE,
                         ", ".join(f"{k} {v}" for k, v in legacy.items()))
                return cls(tracker_overrides={"hybrid": legacy})
            return cls()
        if legacy:
            raise ModelDirError(f"{model_path / 'hybrid.json'}: {next(iter(legacy))} belongs "
                                f"in {path} (tracker_overrides.hybrid) now; remove it here")
        return cls.from_dict(read_json(path), path)

    def save(self, model_path: str | Path) -> Path:
        """Write ``postprocess.json`` into the model directory; returns its path."""
        path = Path(model_path) / POSTPROCESS_FILE
        write_json(path, self.to_dict())
        return path


def _check_detector(detector: str) -> None:
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")


def _tracker_field(name: str) -> Field:
    known = {f.name: f for f in fields(TrackerConfig)}
    if name not in known:
        raise ModelDirError(f"unknown tracker parameter {name!r} (known: {', '.join(known)})")
    return known[name]


def _section(cls: type, data: Any, where: str, section: str) -> dict[str, Any]:
    """Checked keyword arguments of dataclass ``cls`` from the JSON object ``data``."""
    if not isinstance(data, dict):
        raise ModelDirError(f"{where}: {section} must be a JSON object")
    known = {f.name: f for f in fields(cls)}
    out = {}
    for key, value in data.items():
        if key not in known:
            raise ModelDirError(f"{where}: unknown key '{section}.{key}' "
                                f"(known: {', '.join(known)})")
        out[key] = _check_value(known[key], value, f"{where}: {section}.{key}")
    return out


def _check_value(spec: Field, value: Any, where: str) -> Any:
    """``value`` converted to the type of field ``spec`` (a number, None where the field allows
    it, or a tuple of event kinds); :class:`ModelDirError` naming ``where`` otherwise."""
    if isinstance(spec.default, tuple):
        if not isinstance(value, (list, tuple)) or not set(value) <= EVENT_KINDS:
            raise ModelDirError(f"{where} must be a list of event kinds, got {value!r}")
        return tuple(value)
    if value is None and "None" in str(spec.type):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelDirError(f"{where} must be a number, got {value!r}")
    return float(value)


def _overrides(data: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(data, dict):
        raise ModelDirError(f"{where}: tracker_overrides must be a JSON object")
    bad = [name for name in data if name not in DETECTORS]
    if bad:
        raise ModelDirError(f"{where}: unknown key 'tracker_overrides.{bad[0]}' "
                            f"(detectors: {', '.join(DETECTORS)})")
    return {name: _section(TrackerConfig, values, where, f"tracker_overrides.{name}")
            for name, values in data.items()}


def _strings(data: Any, where: str, section: str, kind: type) -> Any:
    values = data.values() if isinstance(data, dict) else data
    if not isinstance(data, kind) or not all(isinstance(v, str) for v in values):
        raise ModelDirError(f"{where}: {section} must be a JSON "
                            f"{'object' if kind is dict else 'list'} of strings")
    return data


def _legacy_hybrid_values(model_path: Path) -> dict[str, float]:
    """Tracker values a ``hybrid.json`` written before ``postprocess.json`` holds."""
    path = model_path / "hybrid.json"
    if not path.is_file():
        return {}
    data = read_json(path)
    return {key: float(data[key]) for key in LEGACY_HYBRID_KEYS if data.get(key) is not None}
