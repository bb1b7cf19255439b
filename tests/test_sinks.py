"""Sinks: SQLite store (migrations, concurrent reader), ZMQ PUB, CSV/Parquet, labels TIFF."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import zmq

from engine.events import EVENT_COLUMNS, Event
from engine.sinks import Sink, SinkSet
from engine.sinks.labels import LabelsWriter
from engine.sinks.publish import EventPublisher, decode
from engine.sinks.store import MIGRATIONS, SCHEMA_VERSION, SqliteStore, schema_version
from engine.sinks.tables import read_events_csv, write_events_csv, write_events_parquet


def events(n=3, stream="s1"):
    return [Event(i, "spark", 10.0 * i, 10.0 * i + 5, 10.0 * i + 30, 1.5 * i, math.nan,
                  0.5, 2.0, 30.0, 8.0, 20.0, stream, "cell-1", 0.9) for i in range(1, n + 1)]


INFO = {"stream": "s1", "cell": "cell-1", "mode": "linescan", "shape": [512], "pixel_um": 0.14,
        "dt_ms": 1.5, "model": "unet-ls", "backend": "onnxruntime", "backend_reason": "no gpu",
        "lookahead_ms": 120.0}


def test_store_roundtrip(tmp_path):
    store = SqliteStore(tmp_path / "castream.db")
    assert isinstance(store, Sink) and store.kind == "store"
    store.open_stream(INFO)
    store.write_events("s1", events(3))
    store.write_stats("s1", {"frames_in": 100, "lag_frames": 2, "compute_p99_ms": 4.0, "gpu": 1})
    store.write_stats("s1", {"frames_in": 200, "lag_frames": 1})
    store.write_cell("s1", {"cell": "cell-1", "label": "cpvt", "confidence": 0.9, "n_sparks": 3,
                            "votes": {"wt": 1, "cpvt": 2}})
    store.close_stream("s1")
    (row,) = store.list_streams()
    assert row["shape"] == [512] and row["backend"] == "onnxruntime" and row["stopped_s"]
    rows = store.events("s1")
    assert [r["event_id"] for r in rows] == [1, 2, 3] and math.isnan(rows[0]["y_um"])
    assert [r["event_id"] for r in store.events("s1", since_id=rows[1]["id"])] == [3]
    assert store.latest_stats("s1")["frames_in"] == 200
    assert store.stats("s1")[0]["gpu"] == 1
    assert store.cell_summary("s1")["votes"] == {"wt": 1, "cpvt": 2}
    store.close()


def test_migration_from_older_schema(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE schema_version (version INTEGER)")
        MIGRATIONS[0][1](db)  # a v1 store: no cell_summaries, no lookahead_ms
        db.execute("INSERT INTO schema_version VALUES (1)")
        db.execute("INSERT INTO streams (stream, mode) VALUES ('old', 'frames')")
    db.close()
    store = SqliteStore(path)
    assert schema_version(store._db) == SCHEMA_VERSION
    assert store.list_streams()[0]["stream"] == "old"
    store.write_cell("old", {"label": "wt", "confidence": 0.6, "n_sparks": 1, "votes": {}})
    assert store.cell_summary("old")["label"] == "wt"
    store.close()
    fresh = SqliteStore(tmp_path / "new.db")  # v0 (empty file) → current
    assert schema_version(fresh._db) == SCHEMA_VERSION
    fresh.close()


def test_reader_in_other_process_sees_commits(tmp_path):
    path = tmp_path / "live.db"
    writer = SqliteStore(path)
    writer.open_stream(INFO)
    writer.write_events("s1", events(2))
    code = (
        "import sys; from engine.sinks.store import SqliteStore;"
        f"s = SqliteStore({str(path)!r}, readonly=True);"
        "print(len(s.events('s1')), s.list_streams()[0]['stream'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "s1"]
    writer.write_events("s1", events(4)[2:])
    reader = SqliteStore(path, readonly=True)
    assert len(reader.events("s1")) == 4
    with pytest.raises(PermissionError):
        reader.write_events("s1", events(1))
    reader.close()
    writer.close()


def test_publisher_topics_over_inproc():
    context = zmq.Context()
    publisher = EventPublisher("inproc://castream-test-pub", context=context)
    subscriber = context.socket(zmq.SUB)
    subscriber.connect("inproc://castream-test-pub")
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    poller = zmq.Poller()
    poller.register(subscriber, zmq.POLLIN)
    while True:  # the slow-joiner: publish until the subscription is live (no fixed sleep)
        publisher.publish("stats", {"stream": "probe"})
        if poller.poll(10):
            subscriber.recv_multipart()
            break
    while poller.poll(0):
        subscriber.recv_multipart()
    publisher.write_events("s1", events(2))
    publisher.write_cell("s1", {"label": "wt", "confidence": 0.7})
    publisher.publish_preview("s1", 100, np.arange(12, dtype=np.uint8).reshape(3, 4), 0, 2)
    received = [decode(subscriber.recv_multipart()) for _ in range(4)]
    assert [topic for topic, _ in received] == ["event", "event", "cell", "preview"]
    assert received[0][1]["event_id"] == 1 and math.isnan(received[0][1]["y_um"])
    preview = received[3][1]
    image = np.frombuffer(preview["data"], np.uint8).reshape(preview["shape"])
    assert image[2, 3] == 11 and preview["first"] == 100 and preview["hi"] == 2
    publisher.close()
    assert publisher.publish("event", {}) is False and publisher.errors == 1
    subscriber.close()
    context.term()


def test_sinkset_store_raises_display_logs():
    class Broken:
        def __init__(self, kind):
            self.kind = kind

        def write_events(self, stream, evs):
            raise OSError("disk gone")

    sinks = SinkSet([Broken("display")])
    sinks.write_events("s1", [])
    assert sinks.errors == {"Broken": 1}
    with pytest.raises(OSError):
        SinkSet([Broken("display"), Broken("store")]).write_events("s1", [])


def test_csv_columns_exact_and_parquet(tmp_path):
    path = write_events_csv(tmp_path / "events.csv", events(2))
    header = path.read_text().splitlines()[0]
    assert header == ",".join(EVENT_COLUMNS)
    back = read_events_csv(path)
    assert back[1]["event_id"] == 2 and math.isnan(back[1]["y_um"]) and back[1]["cell"] == "cell-1"
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(write_events_parquet(tmp_path / "events.parquet", events(2)))
    assert tuple(table.column_names) == EVENT_COLUMNS and table.num_rows == 2


def test_labels_writer(tmp_path):
    with LabelsWriter(tmp_path / "labels.tif", (10, 4, 6)) as writer:
        writer.write(0, np.ones((3, 4, 6), np.int32))
        writer.write(7, np.full((3, 4, 6), 5, np.int32))
        with pytest.raises(ValueError):
            writer.write(9, np.ones((2, 4, 6), np.int32))
    labels = tifffile.imread(tmp_path / "labels.tif")
    assert labels.shape == (10, 4, 6) and labels.dtype == np.int32
    assert labels[:3].min() == 1 and labels[3:7].max() == 0 and labels[7:].min() == 5
    assert not (tmp_path / "labels.tif.part").exists()


def test_export_events_command(tmp_path, caplog):
    from engine.cli import main

    store = SqliteStore(tmp_path / "store.db")
    store.open_stream(INFO)
    store.write_events("s1", events(3))
    store.close()
    out = tmp_path / "out.csv"
    assert main(["export-events", str(tmp_path / "store.db"), "--stream", "s1", "--out", str(out)]) == 0
    assert [r["event_id"] for r in read_events_csv(out)] == [1, 2, 3]
    db = str(tmp_path / "store.db")
    assert main(["export-events", db, "--stream", "nope", "--out", str(tmp_path / "o.csv")]) == 1
    assert "'nope' not in" in caplog.text
    out.write_text("mine\n")
    assert main(["export-events", db, "--stream", "s1", "--out", str(out)]) == 1
    assert "exists" in caplog.text and "--force" in caplog.text
    assert out.read_text() == "mine\n"
    assert main(["export-events", db, "--stream", "s1", "--out", str(out), "--force"]) == 0
    assert [r["event_id"] for r in read_events_csv(out)] == [1, 2, 3]
