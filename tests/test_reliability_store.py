"""The store never overwrites an earlier run (issue 11: a stream id used twice kept only the
second run's events)."""

from __future__ import annotations

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
