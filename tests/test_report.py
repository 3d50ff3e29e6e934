"""python -m train.report on a tiny finished run: the report and its plots."""

import subprocess
import sys

import pytest
from PIL import Image

from train_utils import REPO, tiny_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  from train import train
  workdir = tmp_path_factory.mktemp("run")
  train.train_and_evaluate(tiny_config(), str(workdir))
  return workdir


def test_report_command_writes_markdown_and_plots(finished_run):
  out = subprocess.run([sys.executable, "-m", "train.report",
                        f"--workdir={finished_run}"], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  report_dir = finished_run / "report"
  text = (report_dir / "report.md").read_text()
  for needle in ("test accuracy", "spikes per image", "ANN (dense)", "learning_curves.png",
                 "spike_profile.png", '"dataset": "cifar10"'):
    assert needle in text
  for name in ("learning_curves.png", "spike_profile.png"):
    image = Image.open(report_dir / name)
    assert image.size[0] > 300 and image.size[1] > 200
    assert len(set(image.convert("L").getdata())) > 10  # not blank


def test_spike_profile_marks_dilated_blocks(finished_run):
  from train import report
  cfg = report.load_model_config(str(finished_run))
  rates = {f"s{s}b{b}.{l}": 0.1 for s, b in ((1, 1), (2, 1), (3, 1), (3, 2), (4, 1))
           for l in ("lif1", "lif2")}
  rows = report.lif_profile(rates, cfg)
  assert [d for _, _, d in rows] == [False] * 6 + [True] * 2 + [False] * 2
