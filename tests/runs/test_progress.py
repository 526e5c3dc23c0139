"""The live progress line's ETA."""

from __future__ import annotations

import pytest

from cookbook.runs.progress import RunProgress


def test_the_eta_is_the_pace_so_far_or_the_time_limit_if_sooner() -> None:
    paced = RunProgress("t", 100)
    assert paced.eta_s(9, paced._t0 + 10.0) == pytest.approx(90.0)  # 1 s a step, 90 to go
    limited = RunProgress("t", 100, time_limit_s=30.0)
    assert limited.eta_s(9, limited._t0 + 10.0) == pytest.approx(20.0)
    assert limited.eta_s(98, limited._t0 + 29.5) == pytest.approx(29.5 / 99)  # the pace: sooner
    assert limited.eta_s(9, limited._t0 + 40.0) == 0.0  # past the limit: the last step


def test_a_plain_line_shows_the_capped_eta(capsys: pytest.CaptureFixture[str]) -> None:
    with RunProgress("run", 1000, time_limit_s=60.0, plain_every_s=0.0) as progress:
        progress.update(0, {})
    line = capsys.readouterr().err.strip()
    assert line.startswith("run step 1/1000") and int(line.rsplit("eta ", 1)[1][:-1]) <= 60
