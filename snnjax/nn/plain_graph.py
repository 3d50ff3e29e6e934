"""A graph of classic T-step layers run over a whole sequence (the runner of NIR graphs).

Nodes are :class:`snnjax.nn.plain.SequenceLayer` s or stateless modules/callables
(``nnx.Linear``, ``nnx.Conv``, ``nnx.BatchNorm``); edges carry ``(T, B, ...)``
sequences and a node's input is the sum of its incoming edges. The graph runs in
topological order of its strongly connected components: a node outside any
cycle processes the whole sequence at once (one matmul or conv over T*B, one
``lif_scan``); a cycle (e.g. LIF <-> Linear, a recurrent layer) runs in one
``jax.lax.scan`` over T, and the edge that closes it (one leaving a neuron where
there is one) carries the previous step's value (zeros at rest). The state (per stateful node, and those carried values) is
explicit: :meth:`Graph.run` takes and returns it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from snnjax.nn.plain import SequenceLayer

Array = jax.Array


class GraphState(NamedTuple):
    """Per-node states (stateful nodes) and the values carried by cycle-closing edges."""

    nodes: dict[str, Any]
    feedback: dict[str, Array]


class Run(NamedTuple):
    """A run's outputs (an array, or a dict for several outputs), final state, every
    node's output sequence and the neurons' membranes (before reset), ``(T, B, ...)``."""

    output: Array | dict[str, Array]
    state: GraphState
    values: dict[str, Array]
    membranes: dict[str, Array]


def _components(names, succ):
    """Tarjan's strongly connected components, in topological order."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in names:
        if v not in index:
            visit(v)
    return out[::-1]


def _call(node, x, state):
    if isinstance(node, SequenceLayer):
        return node(x, state)
    return node(x), (), None


def _total(terms, where):
    if not terms:
        raise ValueError(f"node {where!r} receives no input")
    return sum(terms[1:], terms[0])


class Graph(nnx.Module):
    """Named nodes and ``(source, target)`` edges; ``inputs``/``outputs`` are edge
    endpoints that are not nodes. Call on ``(T, B, ...)`` (a dict for several inputs)."""

    def __init__(
        self,
        nodes: Mapping[str, Callable],
        edges: Sequence[tuple[str, str]],
        inputs: Sequence[str] = ("input",),
        outputs: Sequence[str] = ("output",),
    ):
        self.nodes = nnx.Dict(dict(nodes))
        self.inputs, self.outputs = tuple(inputs), tuple(outputs)
        self.edges = tuple((str(a), str(b)) for a, b in edges)
        names = set(self.nodes)
        for a, b in self.edges:
            if a not in names | set(self.inputs) or b not in names | set(self.outputs):
                raise ValueError(
                    f"edge ({a!r}, {b!r}) must go from a node or input {sorted(names | set(self.inputs))} "
                    f"to a node or output {sorted(names | set(self.outputs))}"
                )
        self.preds = {n: [a for a, b in self.edges if b == n] for n in (*self.nodes, *self.outputs)}
        for o in self.outputs:
            if not self.preds[o]:
                raise ValueError(f"output {o!r} has no incoming edge")
        succ = {n: [b for a, b in self.edges if a == n and b in names] for n in self.nodes}
        self.plan = tuple(self._order(c, succ) for c in _components(list(self.nodes), succ))

    def _order(self, comp, succ):
        """A component's nodes in an order that runs within one step, and whether it is
        a cycle. Each cycle is closed on an edge that leaves a neuron where it has one
        (the neuron's previous spikes, zeros at rest, as in snnTorch's RLeaky)."""
        members = set(comp)
        if not (len(comp) > 1 or comp[0] in succ[comp[0]]):
            return tuple(comp), False
        entries = [n for n in self.nodes if n in members and set(self.preds[n]) - members]
        if not entries:
            raise ValueError(f"the cycle through {sorted(comp)} receives no input")
        stateful = {n for n in comp if getattr(self.nodes[n], "carries_state", False)}
        inner = {n: [w for w in succ[n] if w in members] for n in comp}
        cut, rank = set(), {}

        def visit(v, path):
            rank.setdefault(v, len(rank))
            path.append(v)
            for w in inner[v]:
                if (v, w) in cut:
                    continue
                if w in path:  # (v, w) closes a cycle: cut it at its last neuron
                    cycle = [*zip(path[path.index(w) :], path[path.index(w) + 1 :]), (v, w)]
                    at_neuron = [e for e in cycle if e[0] in stateful]
                    cut.add(at_neuron[-1] if at_neuron else (v, w))
                elif w not in done:
                    visit(w, path)
            path.pop()
            done.add(v)

        while True:  # until the component without its cut edges has no cycle
            done = set()
            for e in entries:
                if e not in done:
                    visit(e, [])
            order = self._topological(comp, inner, cut, rank)
            if order is not None:
                return tuple(order), True

    @staticmethod
    def _topological(comp, inner, cut, rank):
        """Kahn's order of ``comp`` without the ``cut`` edges (None if cyclic)."""
        indegree = {n: 0 for n in comp}
        for v in comp:
            for w in inner[v]:
                indegree[w] += (v, w) not in cut
        ready, order = [n for n in comp if indegree[n] == 0], []
        while ready:
            ready.sort(key=lambda n: rank.get(n, len(rank)))
            v = ready.pop(0)
            order.append(v)
            for w in inner[v]:
                if (v, w) not in cut:
                    indegree[w] -= 1
                    if indegree[w] == 0:
                        ready.append(w)
        return order if len(order) == len(comp) else None

    def __call__(self, x, state: GraphState | None = None):
        return self.run(x, state).output

    def init_state(self, x) -> GraphState:
        """The state at rest (zeros) for input ``x`` (or its shape/dtype structure)."""
        shapes = jax.eval_shape(lambda x: self.run(x).state, x)
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def run(self, x, state: GraphState | None = None) -> Run:
        """Runs the graph over the leading (time) axis of ``x``."""
        if not isinstance(x, Mapping):
            if len(self.inputs) != 1:
                raise ValueError(f"x must be a dict with the inputs {list(self.inputs)}")
            x = {self.inputs[0]: x}
        if set(x) != set(self.inputs):
            raise ValueError(f"x must have the inputs {list(self.inputs)}, got {sorted(x)}")
        values, membranes = dict(x), {}
        states = {} if state is None else dict(state.nodes)
        feedback = {} if state is None else dict(state.feedback)
        for order, cyclic in self.plan:
            if not cyclic:
                (n,) = order
                inp = _total([values[a] for a in self.preds[n]], n)
                values[n], st, v = _call(self.nodes[n], inp, states.get(n))
                states[n] = st
                if v is not None:
                    membranes[n] = v
            else:
                self._cycle(order, values, states, feedback, membranes)
        out = {o: _total([values[a] for a in self.preds[o]], o) for o in self.outputs}
        nodes = {n: s for n, s in states.items() if not (isinstance(s, tuple) and not s)}
        return Run(
            out if len(out) > 1 else out[self.outputs[0]],
            GraphState(nodes, feedback),
            {n: values[n] for n in self.nodes},
            membranes,
        )

    def _cycle(self, order, values, states, feedback, membranes):
        """One cycle over T steps in a ``jax.lax.scan``; updates the dicts in place."""
        members, pos = set(order), {n: i for i, n in enumerate(order)}
        back = sorted(
            {a for n in order for a in self.preds[n] if a in members and pos[a] >= pos[n]}
        )
        outside = {
            n: _total([values[a] for a in self.preds[n] if a not in members], n)
            for n in order
            if set(self.preds[n]) - members
        }

        def step(carry, x_t):
            st, fb = dict(carry[0]), carry[1]
            out, mem = {}, {}
            for n in order:
                terms = [x_t[n]] if n in x_t else []
                for a in self.preds[n]:
                    if a in members and pos[a] < pos[n]:
                        terms.append(out[a])
                    elif a in members and fb is not None:
                        terms.append(fb[a])
                y, st[n], v = _call(self.nodes[n], _total(terms, n)[None], st[n])
                out[n] = y[0]
                if v is not None:
                    mem[n] = v[0]
            return (st, {a: out[a] for a in back}), (out, mem)

        first = jax.tree.map(lambda a: a[0], outside)
        init_states = {n: states.get(n) for n in order}
        if any(s is None for s in init_states.values()) or any(a not in feedback for a in back):
            shapes = jax.eval_shape(lambda x_t: self._probe(order, x_t, back), first)
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            init_states = {n: zeros[0][n] if s is None else s for n, s in init_states.items()}
            feedback.update({a: zeros[1][a] for a in back if a not in feedback})
        (st, fb), (out, mem) = jax.lax.scan(
            step, (init_states, {a: feedback[a] for a in back}), outside
        )
        states.update(st)
        feedback.update(fb)
        values.update(out)
        membranes.update(mem)

    def _probe(self, order, x_t, back):
        """One step of a cycle from rest, each node as soon as one input is known
        (inputs add, so one gives the shape): the state and carried values."""
        states, out, pending = {}, {}, list(order)
        while pending:
            for n in pending:
                terms = [x_t[n]] if n in x_t else []
                terms += [out[a] for a in self.preds[n] if a in out]
                if terms:
                    y, states[n], _ = _call(self.nodes[n], _total(terms, n)[None], None)
                    out[n] = y[0]
                    pending.remove(n)
                    break
        return states, {a: out[a] for a in back}


def sequential(*layers) -> Graph:
    """A chain ``input -> layer_0 -> ... -> output`` (nodes named "0", "1", ...)."""
    names = [str(i) for i in range(len(layers))]
    chain = ["input", *names, "output"]
    return Graph(dict(zip(names, layers)), list(zip(chain[:-1], chain[1:])))
