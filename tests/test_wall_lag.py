"""Lag in wall-clock seconds (issue 11: "Lag 694 ms" was shown while the analysis was 25 s
behind, because data waiting before the ingest were not counted)."""

from __future__ import annotations

from engine.wall_lag import WallClockLag


def test_lag_is_the_age_of_the_oldest_pending_chunk() -> None:
    lag = WallClockLag()
    # chunks of 100 lines acquired 1 s apart; the first arrived 0.01 s after acquisition
    # (clock offset + fastest transport), later ones waited in queues (back-pressure)
    for i in range(30):
        lag.add_chunk(100 * i, 100, acquired_s=1000.0 + i, arrived_s=1000.01 + i + 0.5 * i)
    assert lag.lag_s(frames_final=0, now_s=1030.01) == 30.0
    assert lag.lag_s(frames_final=500, now_s=1030.01) == 25.0  # 5 chunks final
    assert lag.lag_s(frames_final=3000, now_s=1030.01) == 0.0  # everything analysed


def test_other_clock_and_missing_acquisition_time() -> None:
    lag = WallClockLag()
    lag.add_chunk(0, 10, acquired_s=5.0, arrived_s=1005.0)  # publisher clock 1000 s behind
    lag.add_chunk(10, 10, acquired_s=6.0, arrived_s=1006.0)
    assert lag.lag_s(frames_final=10, now_s=1008.0) == 2.0
    unknown = WallClockLag()
    unknown.add_chunk(0, 10, acquired_s=0.0, arrived_s=50.0)  # no t_ns: arrival time
    assert unknown.lag_s(frames_final=0, now_s=53.0) == 3.0
