"""benchmarks/train_step.py in smoke mode, so it cannot rot (numbers not checked)."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


def test_smoke_run_prints_a_table(capsys):
    spec = importlib.util.spec_from_file_location("train_step_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    results = module.main(["--smoke", "--models=conv", "--variants=grid 1x1,per-window loop"])
    out = capsys.readouterr().out
    assert [r.variant for r in results] == ["grid 1x1", "per-window loop"]
    assert all(r.step_ms > 0 and r.train_ips > 0 and r.compile_s > 0 for r in results)
    assert "| conv* | per-window loop | 4 |" in out and "step time / grid 1x1" in out
