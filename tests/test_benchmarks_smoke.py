"""Smoke test of benchmarks.neuron_scan: tiny sizes, seconds, so it cannot rot.

torch/snntorch/spyx are optional (the `bench` extra): when missing, their rows
must be reported as skipped with the reason, not fail.
"""

import sys

import pytest

from benchmarks import neuron_scan, profile_step, train_step


def _rows(result, library):
    return [r for r in result["rows"] if r["library"] == library]


def test_smoke_run_all_libraries():
    lines = []
    result = neuron_scan.scan(neuron_scan.Options(smoke=True), log=lines.append)
    rows = result["rows"]
    assert {r["library"] for r in rows} >= {"floor", "snnjax"}
    for r in rows:
        if r["skipped"]:  # an optional library that is not installed
            assert r["library"] in ("spyx", "snntorch", "floor")
            assert "not installed" in r["skipped"]
            continue
        assert r["median_ms"] > 0 and len(r["times"]) >= 1
        assert r["peak_mb"] is None or r["peak_mb"] >= 0
    ours = [r for r in _rows(result, "snnjax") if not r["skipped"]]
    assert len(ours) == 3 and all(r["compile_s"] > 0 for r in ours)
    # The same dynamics everywhere: identical spike counts for the snnjax options
    # and snnTorch; Spyx emits each spike one step later (drops the last step's).
    counts = {r["loss"] for r in ours}
    assert len(counts) == 1 and counts.pop() > 0
    torch_counts = [r["loss"] for r in _rows(result, "snntorch") if not r["skipped"]]
    for c in torch_counts:
        assert c == pytest.approx(ours[0]["loss"], abs=2)
    for r in _rows(result, "spyx"):
        if not r["skipped"]:
            assert 0 < r["loss"] <= ours[0]["loss"]
    table = result["table"]
    assert table.splitlines()[0].startswith("| library | form | N | × floor")
    assert "lif_scan, Linear before scan" in table
    assert any("round" in line for line in lines)


def test_missing_optional_libraries_are_skipped_with_reason(monkeypatch):
    for mod in ("torch", "snntorch", "spyx"):
        monkeypatch.setitem(sys.modules, mod, None)  # import raises ImportError
    options = neuron_scan.Options(smoke=True, memory=False, libraries=["spyx", "snntorch"])
    result = neuron_scan.scan(options, log=lambda *_: None)
    rows = result["rows"]
    assert len(rows) == 5 and all("not installed" in r["skipped"] for r in rows)
    assert {r["library"] for r in rows} == {"spyx", "snntorch", "floor"}
    assert "skipped: not installed" in result["table"]


def test_train_step_hugepages_reexec_only_on_request(monkeypatch):
    calls = []
    monkeypatch.setattr(train_step.os, "execve", lambda *a: calls.append(a))
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    train_step.reexec_with_hugepages(["--hugepages"])
    monkeypatch.delenv("GLIBC_TUNABLES")
    train_step.reexec_with_hugepages([])
    assert not calls
    train_step.reexec_with_hugepages(["--hugepages"])
    if sys.platform == "linux":
        ((_, _, env),) = calls
        assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    assert train_step.cpu_model()


def test_profile_step_classifies_hlo_ops():
    import jax
    import jax.numpy as jnp

    def f(x, k, w):
        y = jax.lax.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jnp.tanh(y.reshape(-1, 4) @ w).T

    args = (jnp.ones((2, 4, 4, 3)), jnp.ones((3, 3, 3, 4)), jnp.ones((4, 5)))
    hlo = jax.jit(f).lower(*args).compile().as_text()
    kinds = set(profile_step.classify(hlo).values())
    assert "convolution" in kinds and "dot (matmul)" in kinds


def test_profile_step_reads_ops_not_their_metadata():
    """A backward loop (op name "transpose(jvp())") is a loop, not a transpose,
    and an elementwise fusion is not a copy because its op name says so."""
    hlo = "\n".join(
        [
            "%fused_add (p0: f32[4], p1: f32[4]) -> f32[4] {",
            '  ROOT %add.1 = f32[4]{0} add(%p0, %p1), metadata={op_name="transpose(jvp())/add"}',
            "}",
            "ENTRY %main (a: f32[4]) -> f32[4] {",
            '  %add_fusion = f32[4]{0} fusion(%a, %a), kind=kLoop, calls=%fused_add, metadata={op_name="transpose(jvp())/add"}',
            '  %while.7 = (s32[], f32[4]{0}) while(%t), condition=%c, body=%b, metadata={op_name="transpose(jvp(while))"}',
            "  ROOT %copy.1 = f32[4]{0} copy(%a)",
            "}",
        ]
    )
    kinds = profile_step.classify(hlo)
    assert kinds["while.7"] == "while (scan)"
    assert kinds["add_fusion"] == "elementwise / other fusion"
    assert kinds["copy.1"] == "transpose/copy"
