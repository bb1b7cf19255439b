"""Which optional dependencies (``pyproject.toml`` extras) a ``castream`` command needs.

The base install (numpy, pyzmq, msgpack) is the publisher SDK a microscope PC needs;
``publisher`` adds TIFF replay (tifffile, tqdm); ``engine`` everything that analyses; ``ui``,
``offline``, ``cluster`` and ``tensorrt`` each build on ``engine``; ``all`` is every extra but
``tensorrt``. When a command meets a missing optional module, the CLI names the extra to
install in one line (:func:`install_hint`) instead of a traceback.

``pyproject.toml`` is the truth; ``tests/test_install_extras.py`` checks these tables
against it.
"""

from __future__ import annotations

#: the smallest extra that installs each optional top-level module
EXTRA_OF_MODULE: dict[str, str] = {
    "tifffile": "publisher", "tqdm": "publisher",
    "scipy": "engine", "skimage": "engine", "torch": "engine", "safetensors": "engine",
    "onnx": "engine", "onnxruntime": "engine", "pyarrow": "engine", "matplotlib": "engine",
    "streamlit": "ui", "pandas": "ui",
    "sklearn": "offline",
    "dask": "cluster", "distributed": "cluster",
    "tensorrt": "tensorrt",
}

#: the extra each command needs (None: the base install)
COMMAND_EXTRA: dict[str, str | None] = {
    "keys": None,
    "replay": "publisher", "ingest": "publisher", "recover": "publisher",
    "simulate": "engine", "serve": "engine", "analyze": "engine", "cells": "engine",
    "export-events": "engine",
    "demo": "ui", "dashboard": "ui",
    "train": "offline", "evaluate": "offline", "export": "offline", "tune-hybrid": "offline",
    "train-classifier": "offline", "train-cells": "offline",
}

#: each of these extras includes the ones before it; every other extra includes them all
CHAIN = ("publisher", "engine")


def install_hint(command: str, missing_module: str | None) -> str | None:
    """The extra to install when ``command`` could not import ``missing_module``; None when
    that module is no optional dependency of castream (a real error, not an install choice).

    A module of the publisher/engine chain names the command's own extra when that includes
    it (``analyze`` without tifffile: ``engine``, not ``publisher``); a module of a feature
    extra names that extra (``analyze --workers`` without dask: ``cluster``).
    """
    module_extra = EXTRA_OF_MODULE.get((missing_module or "").split(".")[0])
    if module_extra is None:
        return None
    command_extra = COMMAND_EXTRA.get(command)
    if (module_extra in CHAIN and command_extra is not None
            and _rank(command_extra) >= _rank(module_extra)):
        return command_extra
    return module_extra


def _rank(extra: str) -> int:
    return CHAIN.index(extra) if extra in CHAIN else len(CHAIN)
