"""A self-contained report of a finished run: Markdown with PNG plots.

    python -m train.report --workdir=DIR      # writes DIR/report/report.md

Reads what the training program left in the workdir (the config stored in its
newest checkpoint, ``metrics.jsonl``, ``summary.json``, and
``membrane_health.json`` when ``python -m train.probe`` wrote it; see
:mod:`train.rundir`) and draws the learning curves, the spike
rate of every LIF layer with normal and dilated blocks marked (paper Fig. 4),
and the operation and energy table against the dense ANN (Table 2). The plotting
functions are reused by ``notebooks/03_model_inspection.ipynb``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from absl import flags
from matplotlib.figure import Figure  # no pyplot: no global backend state

from snnjax import energy, models
from snnjax.counts import block_name
from snnjax.nn.config import SequencerConfig
from snnjax.nn.mixers import mixer_class
from train import cli, metrics, rundir
from train.model_config import model_config

NORMAL, DILATED = "tab:blue", "tab:orange"


def lif_profile(rates: Mapping[str, float], cfg: SequencerConfig) -> list[tuple[str, float, bool]]:
    """(layer, rate, dilated) for every LIF layer, in network order."""
    rows = []
    lif_names = mixer_class(cfg.mixer).lif_names
    for s, depth in enumerate(cfg.depths):
        for b in range(depth):
            dilated = cfg.block_layout(s, b).dilated
            for layer in lif_names:
                name = f"{block_name(s, b)}.{layer}"
                if name in rates:
                    rows.append((name, rates[name], dilated))
    return rows


def plot_spike_profile(rates: Mapping[str, float], cfg: SequencerConfig, ax) -> None:
    """Bar chart of the spike rate per LIF layer (Fig. 4)."""
    rows = lif_profile(rates, cfg)
    ax.bar(
        range(len(rows)),
        [r for _, r, _ in rows],
        color=[DILATED if d else NORMAL for _, _, d in rows],
    )
    ax.set_xticks(range(len(rows)), [n for n, _, _ in rows], rotation=90, fontsize=7)
    ax.set_ylabel("spike rate")
    ax.set_title("Spike rate per LIF layer (Fig. 4)")
    ax.bar(0, 0, color=NORMAL, label="normal windows")
    ax.bar(0, 0, color=DILATED, label="dilated windows")
    ax.legend()


def plot_membrane_health(
    runs: Mapping[str, Mapping[str, Mapping[str, float]]], vth: float, ax_rate, ax_v
) -> None:
    """Per spiking layer: the spike rate (bars, one colour per run) and the
    membrane mean +- std against ``vth`` (``runs``: label -> the ``init`` or
    ``trained`` entry of ``membrane_health.json``, :mod:`train.probe`)."""
    labels = list(runs)
    layers = list(runs[labels[0]])
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(layers))]
        stats = [runs[label][name] for name in layers]
        ax_rate.bar(xs, [st["rate"] for st in stats], width, label=label)
        ax_v.errorbar(
            xs,
            [st["v_mean"] for st in stats],
            [st["v_std"] for st in stats],
            fmt="o",
            ms=3,
            capsize=2,
            label=label,
        )
    silent = energy.SILENT_RATE
    ax_rate.axhline(silent, color="red", lw=0.8, ls=":", label=f"{silent} (silent)")
    ax_v.axhline(vth, color="black", lw=0.8, ls="--", label=f"vth = {vth}")
    for ax, name in ((ax_rate, "spike rate"), (ax_v, "membrane V: mean +- std")):
        ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=7)
        ax.set_ylabel(name)
        ax.legend(fontsize=7)


def plot_learning_curves(records: Sequence[Mapping], ax_loss, ax_acc) -> None:
    """Training loss and accuracy (per logged step) and evaluation accuracy."""

    def series(key):
        points = [(r["step"], r[key]) for r in records if key in r]
        return [p[0] for p in points], [p[1] for p in points]

    for key, ax, label in (
        ("train/loss", ax_loss, "train"),
        ("eval/loss", ax_loss, "eval"),
        ("train/accuracy", ax_acc, "train"),
        ("eval/accuracy", ax_acc, "eval"),
    ):
        steps, values = series(key)
        if steps:
            ax.plot(steps, values, "o-" if key.startswith("eval") else "-", label=label)
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.legend()


def load_model_config(workdir: str) -> SequencerConfig:
    """The model config of ``workdir``'s run (stored in its checkpoints)."""
    return model_config(rundir.read_config(workdir))[1]


def write_report(workdir: str, out_dir: str | None = None) -> str:
    """Writes ``report.md`` and its PNGs into ``out_dir`` (``workdir/report``)."""
    out_dir = out_dir or rundir.path(workdir, rundir.REPORT_DIR)
    os.makedirs(out_dir, exist_ok=True)
    config = rundir.read_config(workdir)
    cfg = model_config(config)[1]
    records = metrics.read_metrics(workdir)
    with open(rundir.path(workdir, rundir.SUMMARY)) as f:
        summary = json.load(f)

    fig = Figure(figsize=(10, 3.5), layout="tight")
    plot_learning_curves(records, *fig.subplots(1, 2))
    fig.savefig(os.path.join(out_dir, "learning_curves.png"), dpi=100)
    fig = Figure(figsize=(10, 3.5), layout="tight")
    plot_spike_profile(summary["spike_rates"], cfg, fig.subplots())
    fig.savefig(os.path.join(out_dir, "spike_profile.png"), dpi=100)
    health_path = rundir.path(workdir, rundir.HEALTH)
    health_section = (
        "Run `python -m train.probe --workdir=...` for the membrane "
        "statistics of every spiking layer."
    )
    if os.path.exists(health_path):
        with open(health_path) as f:
            health = json.load(f)
        fig = Figure(figsize=(10, 6), layout="tight")
        plot_membrane_health(
            {"init": health["init"], f"step {health['step']}": health["trained"]},
            health["vth"],
            *fig.subplots(2, 1),
        )
        fig.savefig(os.path.join(out_dir, "membrane_health.png"), dpi=100)
        health_section = "![membrane health](membrane_health.png)"

    ops = models.operations(cfg)
    reports = {
        name: energy.estimate(ops, summary["spike_rates"], accounting=name)
        for name in energy.ACCOUNTINGS
    }
    energy_rows = "\n".join(
        f"| energy per image, {name} accounting: SNN / dense ANN "
        f"({r.ann_pj_per_op:g} pJ/op) | {r.energy_uj:.2f} uJ / {r.ann_energy_uj:.2f} uJ |"
        for name, r in reports.items()
    )
    warnings = energy.rate_warnings(summary["spike_rates"])
    health = (
        "\n".join(f"- **Warning**: {w}" for w in warnings)
        if warnings
        else "Every spiking layer fires at a rate between "
        f"{energy.SILENT_RATE} and {energy.SATURATED_RATE}."
    )
    config_text = config.to_json(indent=2)
    text = f"""# Run report: {os.path.abspath(workdir)}

| metric | value |
|---|---:|
| test accuracy | {100 * summary["accuracy"]:.2f} % |
| test loss | {summary["loss"]:.4f} |
| images evaluated | {summary["num_images"]} |
| mean spike rate (LIF layers) | {summary["mean_spike_rate"]:.3f} |
| spikes per image | {summary["spikes_per_image"]:.0f} |
{energy_rows}
| parameters | {summary["num_params"] / 1e6:.3f} M |

## Learning curves

![learning curves](learning_curves.png)

## Spike rate per LIF layer

![spike profile](spike_profile.png)

{health}

{health_section}

## Operations and energy per image (45 nm)

Layerwise accounting (spike-fed layers cost additions at their own input
rate, real-valued inputs cost MACs):

{reports["layerwise"].table(per_layer=False)}

The paper's accounting (Table 2: MACs for the stem only, additions = the mean
LIF rate x every other layer's dense ops):

{reports["paper"].table(per_layer=False)}

<details><summary>per layer (layerwise)</summary>

{reports["layerwise"].table()}

</details>

## Config

```json
{config_text}
```
"""
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as f:
        f.write(text)
    return path


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "Workdir of a finished run.", required=True)
    flags.DEFINE_string("out_dir", None, "Where to write (default: <workdir>/report).")


def main(argv):
    cli.no_arguments(argv)
    print(write_report(flags.FLAGS.workdir, flags.FLAGS.out_dir))


if __name__ == "__main__":
    cli.run(main, define_flags)
