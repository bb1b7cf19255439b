"""What a stream is: a line-scan, a movie or a structure image -- one name, every spelling.

The kind of a stream is written differently wherever it leaves the process, and each of
those spellings stays as it is (the wire, the recordings, model directories and the command
line are contracts):

============  =============  ================  ============  =================
kind          wire ``mode``  array axes        model kind    one item is a
============  =============  ================  ============  =================
``LINESCAN``  ``linescan``   ``TX``            ``linescan``  line ``(X,)``
``MOVIE``     ``frames``     ``TYX``           ``movie``     frame ``(Y, X)``
``IMAGE``     ``image``      ``ZYX`` / ``YX``  (none)        plane ``(Y, X)``
============  =============  ================  ============  =================

Inside the process the kind is a :class:`StreamKind`; convert at the edge with
:meth:`StreamKind.from_wire_mode`, :meth:`~StreamKind.from_axes`,
:meth:`~StreamKind.from_model_kind` or :meth:`~StreamKind.from_item_shape`, and back with
:attr:`~StreamKind.wire_mode`, :attr:`~StreamKind.axes` and :attr:`~StreamKind.model_kind`.
An unknown spelling raises :class:`ValueError` naming the accepted ones.
"""

from __future__ import annotations

from enum import Enum


class StreamKind(Enum):
    """The kind of a stream; its value is the kind's name (``"linescan"``, ``"movie"``,
    ``"image"``)."""

    LINESCAN = "linescan"
    MOVIE = "movie"
    IMAGE = "image"

    # -- from the outside spellings ------------------------------------------------------
    @classmethod
    def from_wire_mode(cls, mode: str) -> StreamKind:
        """The kind of a wire ``start``'s ``mode`` (``"linescan"``, ``"frames"``, ``"image"``)."""
        return _lookup(_BY_WIRE_MODE, mode, "wire mode")

    @classmethod
    def from_axes(cls, axes: str) -> StreamKind:
        """The kind of an array with axis string ``axes`` (``"TX"``, ``"TYX"``, ``"ZYX"``,
        ``"YX"``)."""
        return _lookup(_BY_AXES, axes, "axes")

    @classmethod
    def from_model_kind(cls, kind: str) -> StreamKind:
        """The kind of streams a model of ``kind`` (``"linescan"``, ``"movie"``) analyses."""
        return _lookup(_BY_MODEL_KIND, kind, "model kind")

    @classmethod
    def from_item_shape(cls, shape: tuple[int, ...]) -> StreamKind:
        """The time-series kind whose one line/frame has ``shape``: ``(X,)`` is a line-scan,
        ``(Y, X)`` a movie (an image plane cannot be told from a frame by its shape)."""
        by_ndim = {kind.item_ndim: kind for kind in cls.time_series()}
        if len(shape) not in by_ndim:
            raise ValueError(f"one line (X,) or frame (Y, X) has 1 or 2 axes, got shape "
                             f"{tuple(shape)}")
        return by_ndim[len(shape)]

    @classmethod
    def time_series(cls) -> tuple[StreamKind, ...]:
        """The kinds with a time axis, in which Ca²⁺ events are found."""
        return cls.LINESCAN, cls.MOVIE

    # -- to the outside spellings --------------------------------------------------------
    @property
    def wire_mode(self) -> str:
        """The wire ``start``'s ``mode``."""
        return _WIRE_MODE[self]

    @property
    def axes(self) -> str:
        """Axis string of the stream's arrays (an image's planes: ``"ZYX"``)."""
        return _AXES[self]

    @property
    def model_kind(self) -> str:
        """The kind named in a model directory (no model analyses images)."""
        if self is StreamKind.IMAGE:
            raise ValueError("structure images have no event model (model kinds: "
                             f"{', '.join(_BY_MODEL_KIND)})")
        return self.value

    # -- what it implies -----------------------------------------------------------------
    @property
    def is_linescan(self) -> bool:
        return self is StreamKind.LINESCAN

    @property
    def is_image(self) -> bool:
        return self is StreamKind.IMAGE

    @property
    def item_ndim(self) -> int:
        """Axes of one item on the wire: a line ``(X,)`` 1, a frame or image plane ``(Y, X)``
        2."""
        return 1 if self.is_linescan else 2

    @property
    def item_name(self) -> str:
        """What one item is called in messages: ``"line"``, ``"frame"`` or ``"plane"``."""
        return _ITEM_NAME[self]


_WIRE_MODE = {StreamKind.LINESCAN: "linescan", StreamKind.MOVIE: "frames",
              StreamKind.IMAGE: "image"}
_AXES = {StreamKind.LINESCAN: "TX", StreamKind.MOVIE: "TYX", StreamKind.IMAGE: "ZYX"}
_ITEM_NAME = {StreamKind.LINESCAN: "line", StreamKind.MOVIE: "frame",
              StreamKind.IMAGE: "plane"}
_BY_WIRE_MODE = {mode: kind for kind, mode in _WIRE_MODE.items()}
_BY_AXES = {**{axes: kind for kind, axes in _AXES.items()}, "YX": StreamKind.IMAGE}
_BY_MODEL_KIND = {kind.value: kind for kind in StreamKind.time_series()}


def _lookup(table: dict[str, StreamKind], value: str, what: str) -> StreamKind:
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(table)}")
    return table[value]
