"""Dashboard settings, passed from ``castream dashboard`` to the Streamlit page by environment.

Environment variables (all optional):

``CASTREAM_STORE``      SQLite store written by ``castream serve --store`` (default ``castream.db``)
``CASTREAM_EVENTS``     the engine's PUB endpoint (``serve --publish``) for live previews
``CASTREAM_INGEST``     the engine's ingest endpoint (``serve --endpoint``) for the launcher
``CASTREAM_REFRESH_S``  seconds between page refreshes (default 1.0)
``CASTREAM_STALE_S``    seconds without an engine update before the page warns (default 10)
``CASTREAM_LAUNCH_DIR`` folder the page may replay TIFFs from; the launcher is off without it
``CASTREAM_CURVE_DIR``, ``CASTREAM_CURVE_NAME``  CURVE client keys for the live feed
``CASTREAM_RECORD_DIR`` ``serve``'s record directory: the Cells view draws the recorded
                        structure image (without it, the label image from the store)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_STORE = "CASTREAM_STORE"
ENV_EVENTS = "CASTREAM_EVENTS"
ENV_INGEST = "CASTREAM_INGEST"
ENV_REFRESH_S = "CASTREAM_REFRESH_S"
ENV_STALE_S = "CASTREAM_STALE_S"
ENV_LAUNCH_DIR = "CASTREAM_LAUNCH_DIR"
ENV_CURVE_DIR = "CASTREAM_CURVE_DIR"
ENV_CURVE_NAME = "CASTREAM_CURVE_NAME"
ENV_RECORD_DIR = "CASTREAM_RECORD_DIR"


@dataclass(frozen=True)
class DashboardConfig:
    """What the page reads and where it may send demo streams."""

    store_path: str = "castream.db"
    events_endpoint: str = ""
    ingest_endpoint: str = ""
    refresh_s: float = 1.0
    stale_s: float = 10.0
    launch_dir: str = ""  # `castream dashboard --allow-launch DIR`; "" = no launcher
    curve_dir: str = ""  # CURVE keys for the live feed (`--curve-dir`); "" = plain
    curve_name: str = "client"
    record_dir: str = ""  # `--record-dir` of serve: structure images for the Cells view

    @property
    def launcher_on(self) -> bool:
        """The page may start streams: a folder to replay from and the engine's ingest."""
        return bool(self.launch_dir and self.ingest_endpoint)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardConfig:
        """Read the settings from ``env`` (default ``os.environ``); bad numbers fall back."""
        env = os.environ if env is None else env
        return cls(
            store_path=env.get(ENV_STORE, "") or cls.store_path,
            events_endpoint=env.get(ENV_EVENTS, ""),
            ingest_endpoint=env.get(ENV_INGEST, ""),
            refresh_s=_positive(env.get(ENV_REFRESH_S), cls.refresh_s),
            stale_s=_positive(env.get(ENV_STALE_S), cls.stale_s),
            launch_dir=env.get(ENV_LAUNCH_DIR, ""),
            curve_dir=env.get(ENV_CURVE_DIR, ""),
            curve_name=env.get(ENV_CURVE_NAME, "") or cls.curve_name,
            record_dir=env.get(ENV_RECORD_DIR, ""),
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce this config (for the subprocess)."""
        return {
            ENV_STORE: self.store_path,
            ENV_EVENTS: self.events_endpoint,
            ENV_INGEST: self.ingest_endpoint,
            ENV_REFRESH_S: str(self.refresh_s),
            ENV_STALE_S: str(self.stale_s),
            ENV_LAUNCH_DIR: self.launch_dir,
            ENV_CURVE_DIR: self.curve_dir,
            ENV_CURVE_NAME: self.curve_name,
            ENV_RECORD_DIR: self.record_dir,
        }


def _positive(text: str | None, default: float) -> float:
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if value > 0 else default
