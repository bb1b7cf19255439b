"""Fault injection for the reliability tests: make the recorder's file system fail."""

from __future__ import annotations

import errno
from pathlib import Path

import acquisition.recorder as recorder_module


def make_raw_files_read_only(monkeypatch, suffix: str = ".raw") -> None:
    """Opening a raw recording whose path ends with ``suffix`` fails with EROFS."""
    real_open = recorder_module.os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(suffix):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(recorder_module.os, "open", read_only)


def fail_writes_of(monkeypatch, name_part: str, error: int) -> None:
    """Every write to a raw file whose name contains ``name_part`` fails with ``error``."""
    real_pwrite = recorder_module.os.pwrite

    def pwrite(fd, data, offset):
        if name_part in Path(f"/proc/self/fd/{fd}").resolve().name:
            raise OSError(error, "injected: " + errno.errorcode[error])
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(recorder_module.os, "pwrite", pwrite)
