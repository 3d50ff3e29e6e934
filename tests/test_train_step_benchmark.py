"""benchmarks.train_step in smoke mode, so it cannot rot (numbers not checked)."""

from benchmarks import train_step


def test_smoke_run_prints_a_table(capsys):
    results = train_step.run(models="conv", variants="grid 1x1,per-window loop", smoke=True)
    out = capsys.readouterr().out
    assert [r.variant for r in results] == ["grid 1x1", "per-window loop"]
    assert all(r.step_ms > 0 and r.train_ips > 0 and r.compile_s > 0 for r in results)
    assert "| conv* | per-window loop | 4 |" in out and "step time / grid 1x1" in out
