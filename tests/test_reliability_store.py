"""The store never overwrites an earlier run (issue 11: a stream id used twice kept only the
second run's events)."""

from __future__ import annotations

import pytest

from engine.sinks.store import SqliteStore
from tests.test_sinks import INFO, events


def test_reused_stream_id_keeps_the_earlier_run(tmp_path) -> None:
    store = SqliteStore(tmp_path / "castream.db")
    for run, n_events in ((1, 3), (2, 2), (3, 1)):
        store.open_stream({**INFO, "cell": f"run-{run}"})
        store.write_events("s1", events(n_events))
        store.write_stats("s1", {"frames_in": 100 * run})
        store.close_stream("s1")
    streams = {row["stream"]: row["cell"] for row in store.list_streams()}
    assert streams == {"s1": "run-3", "s1 (run 1)": "run-1", "s1 (run 2)": "run-2"}
    assert [len(store.events(s)) for s in ("s1 (run 1)", "s1 (run 2)", "s1")] == [3, 2, 1]
    assert store.latest_stats("s1 (run 1)")["frames_in"] == 100
    assert store.latest_stats("s1")["frames_in"] == 300
    store.close()


@pytest.mark.parametrize("make", ["folder", "csv"])
def test_export_events_from_a_non_store_is_one_line(tmp_path, caplog, make) -> None:
    from engine.cli import main

    target = tmp_path / "not-a-store"
    if make == "folder":
        target.mkdir()
    else:
        target.write_text("event_id,kind\n1,spark\n")
    code = main(["export-events", str(target), "--stream", "s1", "--out",
                 str(tmp_path / "out.csv")])
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert code == 1 and len(errors) == 1 and "castream store" in errors[0]
