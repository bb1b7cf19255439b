"""Instance-label TIFF written incrementally: final label blocks in, one TIFF out at close.

Blocks are written into a raw memory-mapped temporary file next to the target (so the whole
recording never has to fit in memory); :meth:`LabelsWriter.close` converts it into the TIFF
(same shape as the input, 0 = background, id = ``event_id``) and removes the temporary file.
Frames never written stay 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tifffile

log = logging.getLogger(__name__)


class LabelsWriter:
    """Collect label frames by index, write ``path`` as a TIFF at :meth:`close`.

    Parameters
    ----------
    path : str or Path
        Output TIFF.
    shape : tuple of int
        Full shape ``(T, X)`` or ``(T, Y, X)`` of the recording.
    dtype : numpy dtype
        Label dtype (int32 by default).
    """

    kind = "store"

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype=np.int32) -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self._raw_path = self.path.with_name(self.path.name + ".part")
        self._raw = np.memmap(self._raw_path, dtype=self.dtype, mode="w+", shape=self.shape)
        self.frames_written = 0

    def write(self, first: int, labels: np.ndarray) -> None:
        """Store label frames ``first .. first + n - 1``; raises on out-of-range frames."""
        labels = np.asarray(labels)
        if labels.shape[1:] != self.shape[1:]:
            raise ValueError(f"label frames have shape {labels.shape[1:]}, expected {self.shape[1:]}")
        if first < 0 or first + labels.shape[0] > self.shape[0]:
            raise ValueError(
                f"frames {first}..{first + labels.shape[0] - 1} outside 0..{self.shape[0] - 1}"
            )
        self._raw[first : first + labels.shape[0]] = labels
        self.frames_written += labels.shape[0]

    def close(self) -> Path:
        """Write the TIFF and remove the temporary file (idempotent); returns the TIFF path."""
        if self._raw is None:
            return self.path
        self._raw.flush()
        bigtiff = self._raw.nbytes > 2**31
        tifffile.imwrite(self.path, self._raw, bigtiff=bigtiff, photometric="minisblack")
        del self._raw
        self._raw = None
        self._raw_path.unlink(missing_ok=True)
        log.info("wrote %s (%d frames written)", self.path, self.frames_written)
        return self.path

    def abort(self) -> None:
        """Drop what was written: no TIFF, temporary file removed (idempotent)."""
        if self._raw is None:
            return
        del self._raw
        self._raw = None
        self._raw_path.unlink(missing_ok=True)

    def __enter__(self) -> LabelsWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:  # a failed or interrupted run leaves no labels.tif that looks finished
            self.abort()
