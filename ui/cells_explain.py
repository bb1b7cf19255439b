"""The cell card's explanation: the engine's occlusion map (:mod:`engine.cells.explain`) of
one accepted cell, computed on demand from the recorded structure image, the stored label
image and the cells model that analysed the field (its directory from the field's
``summary``; the packaged model when that directory is gone). Computed once per cell and
field result, then cached: a map costs seconds (tens for the largest cells)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from engine.cells.explain import Explanation, explain_cell
from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
from ui.cells_data import FieldData

log = logging.getLogger(__name__)

#: fewer squares than ``castream cells --explain`` (128): the card waits for the map
CARD_OCCLUSIONS = 64
_LOCK = threading.Lock()
_MODELS: dict[str, CellsModel] = {}
_MAPS: dict[tuple, Explanation] = {}
_MAPS_KEPT = 32


def field_model(data: FieldData) -> CellsModel:
    """The cells model named in the field's summary (loaded once), else the packaged one."""
    named = str((data.row.get("summary") or {}).get("model") or "")
    path = Path(named) if named and (Path(named) / "config.json").is_file() \
        else DEFAULT_CELLS_MODEL
    with _LOCK:
        if str(path) not in _MODELS:
            _MODELS[str(path)] = CellsModel.load(path)
        return _MODELS[str(path)]


def cell_explanation(data: FieldData, cell_id: int) -> Explanation:
    """The occlusion map of ``cell_id`` (cached per field result and cell).

    Raises ``LookupError`` when the structure image is not available (the dashboard needs
    ``--record-dir`` to find it)."""
    if data.image is None:
        raise LookupError(f"no structure image to explain the score on ({data.image_source})")
    key = (data.row["id"], data.image_source, cell_id)
    with _LOCK:
        if key in _MAPS:
            return _MAPS[key]
    explanation = explain_cell(data.image, data.labels, cell_id, data.pixel_um,
                               field_model(data), max_occlusions=CARD_OCCLUSIONS)
    log.info("explained cell %d of field %s with %d squares", cell_id, data.row["field"],
             explanation.n_occlusions)
    with _LOCK:
        while len(_MAPS) >= _MAPS_KEPT:
            _MAPS.pop(next(iter(_MAPS)))
        _MAPS[key] = explanation
    return explanation
