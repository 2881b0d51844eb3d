"""Recurrent layers (LSTM and GRU): their shape and the float cell they compute.

A recurrent layer takes one time step ``x_t`` of ``inputs`` values per frame and keeps a hidden
state ``h`` of ``hidden`` values (and an LSTM its cell state ``c``), both zero at the start of a
sequence. Its gate pre-activations are one dense product over ``[x_t ; h_{t-1}]``::

    a_t = W · [x_t ; h_{t-1}] + b        (4 * hidden sums, W is (4H, inputs + H))

so that a change in either half corrects them as a change of a dense layer's input does, and
an element-wise stage computes the new state from them. The four groups of ``hidden`` sums are,
in order (ONNX's gate order):

- LSTM: ``i``, ``o``, ``f``, ``c``: ``i = σ(a_i)``, ``o = σ(a_o)``, ``f = σ(a_f)``,
  ``g = tanh(a_c)``, ``c_t = f ⊙ c_{t-1} + i ⊙ g``, ``h_t = o ⊙ tanh(c_t)``;
- GRU (PyTorch's form, ONNX ``linear_before_reset = 1``): ``z``, ``r``, ``n_x``, ``n_h``, where
  ``n_x = W_in x_t + b_in`` and ``n_h = W_hn h_{t-1} + b_hn`` are kept apart (their weight rows
  are zero over the other half) because ``r`` multiplies ``n_h`` element-wise:
  ``z = σ(a_z)``, ``r = σ(a_r)``, ``n = tanh(n_x + r ⊙ n_h)``,
  ``h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}``.

The ONNX importer (:mod:`reuse_accel.sw.onnx_import`) builds ``W`` and ``b`` in this layout.

Fixed point
-----------
The element-wise stage works on activations of ``act_width`` bits with ``act_frac``
fractional bits (the gate sums are first rounded, shifted and saturated to that format like a
dense layer's linear outputs). :func:`fixed_sigmoid` reads one table of
``2**SIGMOID_INDEX_BITS`` entries over ``[-SIGMOID_RANGE, SIGMOID_RANGE)``, each the sigmoid at
the middle of its interval rounded to ``act_frac`` bits; :func:`fixed_tanh` reads the same table,
``tanh(a) = 2 σ(2a) − 1``. Products are rounded half up back to ``act_frac`` bits; the cell state
saturates to the activation range. :func:`lstm_cell` and :func:`gru_cell` are the stage's
arithmetic, which the golden model and the gateware share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..core.mac import DeltaMacArray

__all__ = ["CELLS", "ELEMENTWISE_LATENCY", "GATES", "SIGMOID_INDEX_BITS", "SIGMOID_RANGE",
           "ElementwiseStage", "RecurrentShape", "SegmentLayout", "fixed_sigmoid", "fixed_tanh",
           "gru_cell", "lstm_cell", "recurrent_step", "sigmoid_table"]

CELLS = ("lstm", "gru")

SIGMOID_INDEX_BITS = 10
"""The sigmoid table has ``2**SIGMOID_INDEX_BITS`` entries (1024 of 9 bits: half an ECP5
DP16KD). Half as many cost the speech LSTM 0.8 points of frame accuracy without reuse."""
SIGMOID_RANGE = 8
"""The table covers inputs in ``[-8, 8)``, in steps of ``2 * 8 / 1024 = 1/64``; beyond it the
sigmoid is within 3.4e-4 of 0 or 1."""


GATES = 4
"""Groups of ``hidden`` sums a recurrent layer keeps (LSTM ``i, o, f, c``; GRU ``z, r, n_x,
n_h``), each padded to whole rows of L lanes so that a row of sums belongs to one gate."""

@dataclass(frozen=True)
class SegmentLayout:
    """How a layer's inputs sit in rows when they come in segments, each starting a new row
    of L lanes (a recurrent layer's ``x_t`` from the I/O buffer, then ``h_{t-1}`` from the
    layer's own memory). Like :class:`~reuse_accel.hw.layers.conv.MapLayout` for the cycle
    formula and the weight layout."""

    sizes: tuple[int, ...]

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def rows(self, lanes: int) -> int:
        return sum(-(-size // lanes) for size in self.sizes)

    def span(self, lanes: int) -> int:
        """Slots up to the last value (the last segment's last)."""
        return (self.rows(lanes) - -(-self.sizes[-1] // lanes)) * lanes + self.sizes[-1]

    def stored_index(self, lanes: int) -> np.ndarray:
        """The slot (row * L + lane) of every input, segment by segment."""
        starts = np.cumsum([0, *(-(-size // lanes) * lanes for size in self.sizes[:-1])])
        return np.concatenate([start + np.arange(size)
                               for start, size in zip(starts, self.sizes)])


@dataclass(frozen=True)
class RecurrentShape:
    """The shape of a recurrent layer: its ``cell`` (``"lstm"`` or ``"gru"``), the ``inputs``
    of one time step and the ``hidden`` size."""

    cell: str
    inputs: int
    hidden: int

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"the cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if self.inputs < 1 or self.hidden < 1:
            raise ValueError(f"a recurrent layer needs positive inputs and hidden size, not "
                             f"{self.inputs} and {self.hidden}")

    @property
    def sums(self) -> int:
        """Gate pre-activations the layer computes: four groups of ``hidden``."""
        return GATES * self.hidden

    def groups(self, lanes: int) -> int:
        """Rows of L lanes per gate: ``Gh = ceil(hidden / L)``; the layer keeps ``GATES *
        Gh`` rows of sums, gate ``k``'s group ``j`` in row ``k * Gh + j``."""
        return -(-self.hidden // lanes)

    def sum_rows(self, lanes: int) -> int:
        """Rows of L sums the layer keeps: ``GATES * Gh``."""
        return GATES * self.groups(lanes)

    @property
    def gates_per_input(self) -> int:
        """Gate groups a changed input corrects: all four for an LSTM; three for a GRU, whose
        ``x_t`` never reaches ``n_h`` and whose ``h_{t-1}`` never reaches ``n_x`` (their weight
        rows there are zeros, neither read nor multiplied)."""
        return GATES if self.cell == "lstm" else GATES - 1

    def items_per_input(self, lanes: int) -> int:
        """MAC items (weight rows) of each changed input: ``gates_per_input * Gh``."""
        return self.gates_per_input * self.groups(lanes)

    @property
    def layout(self) -> SegmentLayout:
        """Its inputs in rows: ``x_t``, then ``h_{t-1}`` from a new row."""
        return SegmentLayout((self.inputs, self.hidden))

    @property
    def fan_in(self) -> int:
        """Inputs of the dense product: ``x_t`` and ``h_{t-1}``."""
        return self.inputs + self.hidden

    @property
    def outputs(self) -> int:
        return self.hidden

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.inputs,)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.hidden,)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * values))


def recurrent_step(shape: RecurrentShape, sums: np.ndarray, state: np.ndarray,
                   hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float element-wise stage: the new hidden state and (LSTM) cell state from the gate
    pre-activations ``sums`` (4H), the cell state ``state`` (LSTM; ignored for a GRU) and the
    previous hidden state ``hidden``."""
    a, b, c, d = np.split(np.asarray(sums, dtype=np.float64), 4)
    if shape.cell == "lstm":
        cell = _sigmoid(c) * state + _sigmoid(a) * np.tanh(d)
        return _sigmoid(b) * np.tanh(cell), cell
    update, reset = _sigmoid(a), _sigmoid(b)
    candidate = np.tanh(c + reset * d)
    return (1.0 - update) * candidate + update * hidden, state


def _step_bits() -> int:
    """Fractional bits of the table's input step (6: steps of 1/64)."""
    return SIGMOID_INDEX_BITS - 1 - (SIGMOID_RANGE.bit_length() - 1)


def sigmoid_table(act_frac: int) -> np.ndarray:
    """The sigmoid table: entry ``k`` is ``σ`` at the middle of its input interval,
    ``((k - 2**(B-1)) + 0.5) / 2**F``, rounded to ``act_frac`` bits (0 .. ``2**act_frac``)."""
    count = 1 << SIGMOID_INDEX_BITS
    middles = (np.arange(count) - count // 2 + 0.5) / (1 << _step_bits())
    return np.rint(_sigmoid(middles) * (1 << act_frac)).astype(np.int64)


def fixed_sigmoid(values: np.ndarray, act_frac: int) -> np.ndarray:
    """``σ`` of fixed-point ``values`` (``act_frac`` fractional bits) from the table: the
    index is the value floored to the table's step and clamped to its range."""
    values = np.asarray(values, dtype=np.int64)
    shift = act_frac - _step_bits()
    steps = values >> shift if shift >= 0 else values << -shift
    half = 1 << (SIGMOID_INDEX_BITS - 1)
    return sigmoid_table(act_frac)[np.clip(steps, -half, half - 1) + half]


def fixed_tanh(values: np.ndarray, act_frac: int) -> np.ndarray:
    """``tanh(a) = 2 σ(2a) − 1`` from the sigmoid table."""
    return 2 * fixed_sigmoid(2 * np.asarray(values, dtype=np.int64), act_frac) - (1 << act_frac)


def _product(a: np.ndarray, b: np.ndarray, act_frac: int) -> np.ndarray:
    """``a * b`` of two ``act_frac`` fixed-point values, rounded half up to ``act_frac``."""
    return (a * b + (1 << (act_frac - 1))) >> act_frac


def lstm_cell(gates: np.ndarray, cell: np.ndarray, act_frac: int, act_min: int,
              act_max: int) -> tuple[np.ndarray, np.ndarray]:
    """The LSTM's element-wise stage in fixed point: ``gates`` (4, H) activated pre-activations
    ``i, o, f, c``, the previous cell state; returns ``h`` and the new cell state (saturated to
    ``[act_min, act_max]``)."""
    i, o, f, g = (np.asarray(gate, dtype=np.int64) for gate in gates)
    new_cell = np.clip(_product(fixed_sigmoid(f, act_frac), np.asarray(cell, np.int64),
                                act_frac) +
                       _product(fixed_sigmoid(i, act_frac), fixed_tanh(g, act_frac), act_frac),
                       act_min, act_max)
    hidden = _product(fixed_sigmoid(o, act_frac), fixed_tanh(new_cell, act_frac), act_frac)
    return hidden, new_cell


def gru_cell(gates: np.ndarray, hidden: np.ndarray, act_frac: int, act_min: int,
             act_max: int) -> np.ndarray:
    """The GRU's element-wise stage in fixed point: ``gates`` (4, H) activated ``z, r, n_x,
    n_h``, the previous hidden state; returns the new hidden state."""
    z, r, n_x, n_h = (np.asarray(gate, dtype=np.int64) for gate in gates)
    candidate = fixed_tanh(np.clip(n_x + _product(fixed_sigmoid(r, act_frac), n_h, act_frac),
                                   act_min, act_max), act_frac)
    hidden = np.asarray(hidden, dtype=np.int64)
    return candidate + _product(fixed_sigmoid(z, act_frac), hidden - candidate, act_frac)


class ElementwiseStage(wiring.Component):
    """The recurrent layers' element-wise stage on L lanes: a group of L hidden units at a
    time, from its four rows of activated gate pre-activations to its new hidden state (and an
    LSTM's cell state), bit-exact with :func:`lstm_cell` and :func:`gru_cell`.

    Contract
    --------
    - ``gru``: the cell (0 LSTM, 1 GRU), held while a layer runs.
    - ``i``: one row per cycle when ``i.valid``, never stalled: ``i.gate`` 0 to 3 in order
      (LSTM ``i, o, f, c``; GRU ``z, r, n_x, n_h``) with ``i.values`` the group's activated
      pre-activations of that gate; with gate 0, ``i.state`` holds the group's previous cell
      state (LSTM) or hidden state (GRU). Groups may follow each other without a gap.
    - ``o``: valid :attr:`latency` cycles after a group's gate-3 row, with ``hidden`` (``h_t``)
      and ``cell`` (an LSTM's ``c_t``).
    - Each lane reads one sigmoid table (:func:`sigmoid_table`) through two ports: one for the
      gate rows as they arrive, one for the tanh of the new cell state (or the GRU's candidate).
    """

    latency = 5
    """Cycles from a group's gate-3 row to its result: the gate's table read, the products,
    their sum and saturation, the tanh's table read, the output product."""

    def __init__(self, config):
        self._config = config
        lanes = config.lanes
        row = data.ArrayLayout(signed(config.act_width), lanes)
        super().__init__({
            "gru": In(1),
            "i": In(data.StructLayout({"valid": 1, "gate": 2, "values": row, "state": row})),
            "o": Out(data.StructLayout({"valid": 1, "hidden": row, "cell": row})),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        width, frac = config.act_width, config.act_frac
        one = 1 << frac
        table = sigmoid_table(frac)
        value_bits = int(max(table)).bit_length()
        half_index = 1 << (SIGMOID_INDEX_BITS - 1)

        def index(value, doubled):
            """The table index of ``value`` (of ``2 * value`` when ``doubled``)."""
            shift = frac - _step_bits() - int(doubled)
            steps = value >> shift if shift >= 0 else value << -shift
            return Mux(steps < -half_index, 0,
                       Mux(steps >= half_index, 2 * half_index - 1, steps + half_index))

        def product(a, b):
            """``a * b`` rounded half up to ``act_frac`` fractional bits."""
            return (a * b + (1 << (frac - 1))) >> frac

        def saturate(value):
            return Mux(value < config.act_min, config.act_min,
                       Mux(value > config.act_max, config.act_max, value))

        i, o = self.i, self.o
        # The gate rows: registered with their table reads (available a cycle later).
        gate_valid, gate_index = Signal(), Signal(2)
        raw = Signal.like(i.values)
        state = Signal.like(i.state)
        m.d.sync += [gate_valid.eq(i.valid), gate_index.eq(i.gate), raw.eq(i.values)]
        with m.If(i.valid & (i.gate == 0)):
            m.d.sync += state.eq(i.state)
        # What the group's gates give: sigmoids 0..one, tanh or raw values.
        unit = signed(value_bits + 1)
        gate_values = [Signal(data.ArrayLayout(signed(width + 2), config.lanes),
                              name=f"gate{k}") for k in range(4)]
        # A group's gate 3 is on ``i`` in cycle t: its table read comes in t + 1 with the
        # products, registered; t + 2 their sum; t + 3 the tanh's table read; t + 4 the
        # output product, registered: valid in t + 5.
        s1, s2, s3, s4 = (Signal(name=f"elementwise_s{k}") for k in range(1, 5))
        m.d.sync += [s1.eq(gate_valid & (gate_index == 3)), s2.eq(s1), s3.eq(s2), s4.eq(s3)]
        m.d.comb += o.valid.eq(s4)
        for lane in range(config.lanes):
            rom = memory.Memory(shape=unsigned(value_bits), depth=len(table),
                                init=[int(entry) for entry in table])
            m.submodules[f"sigmoid{lane}"] = rom
            gate_port, cell_port = rom.read_port(), rom.read_port()
            value = i.values[lane]
            # LSTM gate 3 and never a GRU's raw gates 2 and 3: tanh, from 2 * value.
            tanh_gate = ~self.gru & (i.gate == 3)
            m.d.comb += gate_port.addr.eq(Mux(tanh_gate, index(value, True),
                                              index(value, False)))
            sig = Signal(unit, name=f"sig{lane}")
            m.d.comb += sig.eq(gate_port.data)
            is_tanh = Signal(name=f"is_tanh{lane}")
            m.d.sync += is_tanh.eq(tanh_gate)
            looked_up = Mux(is_tanh, 2 * sig - one, sig)
            passed = Mux(self.gru & (gate_index >= 2), raw[lane], looked_up)
            for k in range(4):
                with m.If(gate_valid & (gate_index == k)):
                    m.d.sync += gate_values[k][lane].eq(passed)
            # t + 1 (gate 3's value is ``passed``): the products.
            first, second, third = (gate_values[k][lane] for k in range(3))
            fourth = passed
            lstm_f_c = product(third, state[lane])          # f * c
            lstm_i_g = product(first, fourth)               # i * g
            gru_r_n = product(second, fourth)               # r * n_h
            p_a = Signal(signed(width + 2), name=f"p_a{lane}")
            p_b = Signal(signed(width + 2), name=f"p_b{lane}")
            keep_o = Signal(signed(width + 2), name=f"keep_o{lane}")     # o, or z
            keep_h = Signal(signed(width + 1), name=f"keep_h{lane}")     # the GRU's h_{t-1}
            m.d.sync += [
                p_a.eq(Mux(self.gru, third, lstm_f_c)),     # GRU: n_x
                p_b.eq(Mux(self.gru, gru_r_n, lstm_i_g)),
                keep_o.eq(Mux(self.gru, first, second)),
                keep_h.eq(state[lane]),
            ]
            # t + 2: the sum, saturated: the new cell state, or the candidate's argument.
            total = Signal(signed(width), name=f"total{lane}")
            o2, h2 = Signal.like(keep_o), Signal.like(keep_h)
            m.d.sync += [total.eq(saturate(p_a + p_b)), o2.eq(keep_o), h2.eq(keep_h)]
            # t + 3: its tanh from the table (2 * total).
            m.d.comb += cell_port.addr.eq(index(total, True))
            total3, o3, h3 = Signal.like(total), Signal.like(keep_o), Signal.like(keep_h)
            m.d.sync += [total3.eq(total), o3.eq(o2), h3.eq(h2)]
            tanh = Signal(signed(width + 2), name=f"tanh{lane}")
            m.d.comb += tanh.eq(2 * cell_port.data - one)
            # t + 4: the output, o * tanh(c) or n + z * (h - n), registered.
            hidden = Signal(signed(width), name=f"hidden{lane}")
            cell = Signal(signed(width), name=f"cell{lane}")
            m.d.sync += [
                hidden.eq(Mux(self.gru, tanh + product(o3, h3 - tanh), product(o3, tanh))),
                cell.eq(total3),
            ]
            m.d.comb += [o.hidden[lane].eq(hidden), o.cell[lane].eq(cell)]
        return m


ELEMENTWISE_LATENCY = DeltaMacArray.readout_latency + ElementwiseStage.latency
"""Cycles of a recurrent layer's readout on top of its ``GATES`` sum reads per group of L
hidden units: the readout's (row register, sum read, the activation's round, shift and
saturate: :attr:`~reuse_accel.hw.core.mac.DeltaMacArray.readout_latency`), then the
:class:`ElementwiseStage`'s, for both cells: 10."""
