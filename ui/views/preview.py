"""The live image: a scrolling kymograph (line-scans) or the current frame (movies) from the
engine's ``preview`` PUB topic, with the detected events drawn over it by kind."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from acquisition.stream_kind import StreamKind
from ui.data import stream_kind_of
from ui.live import PubSubscriber, assemble_kymograph
from ui.plots import figure_bytes, frame_figure, kymograph_figure

#: Time span of the scrolling kymograph.
KYMOGRAPH_WINDOW_MS = 3000.0


def _calibration(stream: dict) -> tuple[list[int], float, float]:
    shape = [int(n) for n in (stream.get("shape") or [])]
    pixel_um = float(stream.get("pixel_um") or 1.0)
    dt_ms = float(stream.get("dt_ms") or 1.0)
    return shape, pixel_um, dt_ms


def is_movie(stream: dict) -> bool:
    """Whether the stream row is a movie (:func:`ui.data.stream_kind_of`)."""
    return stream_kind_of(stream) is StreamKind.MOVIE


def render_preview(
    stream: dict, events: pd.DataFrame, subscriber: PubSubscriber | None, live: bool = True,
) -> None:
    """Live: the newest preview (or, without one, the recent events alone). History: a map
    of all the stream's events."""
    if not live:
        st.markdown("**Event map** — the whole stream")
        figure = _event_map_figure(stream, events)
        st.image(figure_bytes(figure), width="stretch")
        return
    strips = subscriber.strips(stream["stream"]) if subscriber else []
    what = "current frame" if is_movie(stream) else f"last {KYMOGRAPH_WINDOW_MS / 1000:g} s"
    st.markdown(f"**Live image** — {what}, events outlined by kind")
    if is_movie(stream):
        figure = _movie_figure(stream, events, strips)
    else:
        figure = _linescan_figure(stream, events, strips)
    st.image(figure_bytes(figure), width="stretch")
    if subscriber is None:
        st.caption("Events only: start the dashboard with `--events` (the engine's "
                   "`--publish` endpoint) to see the live image under them.")
    elif not strips and not stream.get("live"):
        st.caption("This stream has stopped: there is no live image, only its last events "
                   "(History maps the whole stream).")
    elif not strips:
        st.caption("Waiting for the engine's live image of this stream…")


def _event_map_figure(stream: dict, events: pd.DataFrame):
    shape, pixel_um, _ = _calibration(stream)
    if is_movie(stream):
        n_y, n_x = (shape[-2], shape[-1]) if len(shape) == 2 else (64, 512)
        return frame_figure(None, _latest_ms(events), (n_y * pixel_um, n_x * pixel_um), events,
                            recent_ms=float("inf"))
    x_extent_um = (shape[-1] if shape else 512) * pixel_um
    return kymograph_figure(None, (0.0, max(_latest_ms(events), 1.0)), x_extent_um, events)


def _linescan_figure(stream: dict, events: pd.DataFrame, strips: list):
    shape, pixel_um, dt_ms = _calibration(stream)
    x_extent_um = (shape[-1] if shape else 512) * pixel_um
    if strips:
        window_frames = max(1, int(KYMOGRAPH_WINDOW_MS / dt_ms))
        image, first, step = assemble_kymograph(strips, window_frames)
        t0_ms = first * dt_ms
        return kymograph_figure(image, (t0_ms, t0_ms + image.shape[0] * step * dt_ms),
                                x_extent_um, events)
    t1_ms = _latest_ms(events)
    return kymograph_figure(None, (max(0.0, t1_ms - KYMOGRAPH_WINDOW_MS),
                                   max(t1_ms, KYMOGRAPH_WINDOW_MS)), x_extent_um, events)


def _movie_figure(stream: dict, events: pd.DataFrame, strips: list):
    shape, pixel_um, dt_ms = _calibration(stream)
    n_y, n_x = (shape[-2], shape[-1]) if len(shape) == 2 else (64, 512)
    extent_um = (n_y * pixel_um, n_x * pixel_um)
    if strips:
        newest = strips[-1]
        return frame_figure(newest.image, newest.first * dt_ms, extent_um, events)
    return frame_figure(None, _latest_ms(events), extent_um, events)


def _latest_ms(events: pd.DataFrame) -> float:
    if events.empty:
        return 0.0
    latest = pd.to_numeric(events["t_end_ms"], errors="coerce").max()
    return float(latest) if math.isfinite(latest) else 0.0
