"""A benchmark's results file, ``end_to_end.json``, kept current: rewritten after
every piece, failures recorded instead of losing what was measured."""

from __future__ import annotations

import json
import os
import traceback

import jax


class Results:
    """``end_to_end.json`` in ``--out``, rewritten after every training run and
    benchmark variant, so that a later failure or a hard kill keeps what was
    measured; failures are recorded under ``"errors"``."""

    def __init__(self, config, out: str, elapsed):
        self.out, self.elapsed = out, elapsed  # where to write; seconds since the start
        self.data = {
            "runs": [],
            "benchmarks": [],
            "benchmarks_before": [],
            "errors": [],
            "config": json.loads(config.to_json()),
            "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
            "backend": jax.default_backend(),
        }
        self.save()

    def __getitem__(self, key: str) -> list:
        return self.data[key]

    def add(self, key: str, row: dict) -> None:
        self.data[key].append(row)
        self.save()

    def guarded(self, what: str, fn, *args):
        """``fn(*args)``, or None with the exception recorded and printed."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001  (one failing piece must not lose the rest)
            traceback.print_exc()
            print(f"[{self.elapsed():.0f}s] {what} failed: {type(e).__name__}: {e}", flush=True)
            self.add("errors", {"what": what, "error": f"{type(e).__name__}: {e}"})
            return None

    def save(self) -> None:
        self.data["wall_s"] = self.elapsed()
        if not self.out:
            return
        os.makedirs(self.out, exist_ok=True)
        path = os.path.join(self.out, "end_to_end.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(path + ".tmp", path)
