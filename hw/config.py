"""The accelerator's hardware parameters: the one source of truth.

Gateware, golden model, driver and tests all read an :class:`AccelConfig`. Every width that
can be derived is derived here, so that no other module re-computes it differently.

Number formats
--------------
- Activations and centroids are signed fixed point with ``act_frac`` fractional bits
  (``act_width`` and ``centroid_width`` bits in all).
- Weights are signed integers of ``weight_width`` bits; each layer has a run-time ``shift``
  (its weights' fractional bits), so a weight ``w`` stands for ``w * 2**-shift``.
- Biases and accumulators are at the product scale, ``act_frac + shift`` fractional bits.
- A layer's output is ``saturate(act((acc + round) >> shift))``, ``round = 2**(shift-1)``
  (0 when ``shift`` is 0), ``act`` ReLU or identity, saturated to ``act_width`` bits.

The accumulator of a neuron always holds ``bias + sum_i w_i * c_i`` for some centroid ``c_i``
per input, whatever order the corrections come in, so its width is derived from that bound and
overflow cannot happen.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AccelConfig", "ConfigError", "signed_bits_for", "check_config"]

COUNTER_WIDTH = 32
"""Width of every performance counter and protocol control field."""


class ConfigError(ValueError):
    """An invalid hardware configuration; the message names the parameter and the fix."""


def signed_bits_for(magnitude: int) -> int:
    """Smallest signed width that holds every integer in ``[-magnitude, magnitude]``."""
    bits = 1
    while (1 << (bits - 1)) - 1 < magnitude:
        bits += 1
    return bits


def _ceil_log2(value: int) -> int:
    return (value - 1).bit_length() if value > 1 else 0


def _is_pow2(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


# (minimum, maximum) of every integer parameter.
_LIMITS = {
    "lanes": (1, 64),
    "clusters": (2, 128),  # the quantizer keeps K-1 thresholds in registers
    "act_width": (4, 32),
    "act_frac": (0, 31),
    "weight_width": (2, 18),
    "centroid_width": (4, 32),
    "max_layers": (1, 16),
    "max_neurons": (1, 65535),
    "weight_depth": (1, 1 << 24),
    "stream_width": (32, 256),
    "weight_bank_width": (1, 64 * 18),
    "max_kernel": (0, 32),
    "max_height": (1, 4096),
    "max_width": (1, 4096),
    "buffer_depth": (0, 1 << 15),
    "state_depth": (0, 1 << 22),
    "sum_depth": (0, 1 << 22),
}


@dataclass(frozen=True, kw_only=True)
class AccelConfig:
    """Parameters of one generated accelerator.

    Parameters
    ----------
    lanes : int
        Multiply-accumulate lanes L (a power of two). The MAC array reads L weights per cycle
        and the quantizer and comparator handle L inputs per cycle.
    clusters : int
        Clusters K per layer (a power of two; 16 for speech, 32 for video).
    act_width, act_frac : int
        Signed activation width and its fractional bits.
    weight_width : int
        Signed weight width.
    centroid_width : int
        Signed centroid width (same fixed-point scale as activations, at least ``act_width``).
    max_layers, max_neurons : int
        Capacity: layers per network, inputs or outputs per layer.
    weight_depth : int
        Weight-memory rows of L weights each, shared by all layers.
    stream_width : int
        Width W of the host input and output stream words (a multiple of 32).
    weight_bank_width : int
        Bits of a weight row held by each bank of the weight memory. Every bank is a memory of
        its own with its own copy of the row address, so that no address net has to reach
        block RAMs all over the device. 4 suits ECP5 and iCE40 block RAM (a bank of the
        default configuration is 8 ECP5 DP16KD); 16 suits iCE40 SPRAM (16-bit words). It sets
        the physical layout only: behaviour and cycle counts do not depend on it.
    max_kernel : int
        Capacity for conv layers: the largest kernel side and stride. 0 (the default) generates
        no conv gateware.
    max_height, max_width : int
        Capacity for conv layers: the height and width of a conv layer's input map.
    buffer_depth : int
        Rows of L values in each bank of the I/O buffer: the largest map a layer reads or
        writes (a conv layer's map takes ``H * W * ceil(C / L)`` rows). 0 (the default) gives
        ``max_groups``, a dense layer of ``max_neurons``.
    state_depth, sum_depth : int
        Rows of L values in the change detector's input-state memory (every layer's inputs,
        layer after layer) and in the pre-activation sum memory (every layer's sums with reuse,
        the running layer's without). 0 (the default) gives room for ``max_layers`` dense
        layers of ``max_neurons``.
    reuse : bool
        Generate the reuse logic (the default). ``False`` generates the same accelerator
        without it, for comparison: no centroid tables or quantizer, no input-state memory,
        one layer of accumulators instead of every layer's stored sums. It computes every
        layer densely on fixed-point activations (layer 0's inputs are sent as activations,
        not cluster indices).
    """

    lanes: int = 8
    clusters: int = 16
    act_width: int = 16
    act_frac: int = 8
    weight_width: int = 8
    centroid_width: int = 16
    max_layers: int = 4
    max_neurons: int = 512
    weight_depth: int = 32768
    stream_width: int = 32
    weight_bank_width: int = 4
    max_kernel: int = 0
    max_height: int = 1
    max_width: int = 1
    buffer_depth: int = 0
    state_depth: int = 0
    sum_depth: int = 0
    reuse: bool = True

    def __post_init__(self):
        if not isinstance(self.reuse, bool):
            raise ConfigError(f"reuse must be true or false, not {self.reuse!r}")
        for field in dataclasses.fields(self):
            if field.name not in _LIMITS:
                continue
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{field.name} must be an integer, not {value!r}")
            low, high = _LIMITS[field.name]
            if not low <= value <= high:
                raise ConfigError(
                    f"{field.name} must be between {low} and {high}, not {value}")
        if not _is_pow2(self.lanes):
            raise ConfigError(f"lanes must be a power of two, not {self.lanes}")
        if not _is_pow2(self.clusters):
            raise ConfigError(f"clusters must be a power of two, not {self.clusters}")
        if self.act_frac >= self.act_width:
            raise ConfigError(
                f"act_frac must be less than act_width ({self.act_width}), not {self.act_frac}")
        if self.centroid_width < self.act_width:
            raise ConfigError(
                f"centroid_width must be at least act_width ({self.act_width}), "
                f"not {self.centroid_width}")
        if self.index_width > self.act_width:
            raise ConfigError(
                f"clusters={self.clusters} needs {self.index_width}-bit indices, "
                f"wider than act_width={self.act_width}; raise act_width or lower clusters")
        if self.stream_width % COUNTER_WIDTH:
            raise ConfigError(
                f"stream_width must be a multiple of {COUNTER_WIDTH}, not {self.stream_width}")
        if self.bias_width > self.stream_width:
            raise ConfigError(
                f"biases are {self.bias_width} bits (weight_width + centroid_width) and must fit "
                f"one stream word of stream_width={self.stream_width} bits; raise stream_width "
                "or narrow weight_width or centroid_width")
        if self.buffer_depth and self.buffer_depth < self.max_groups:
            raise ConfigError(
                f"buffer_depth must be 0 or at least max_groups = {self.max_groups} (a layer of "
                f"max_neurons={self.max_neurons}), not {self.buffer_depth}")
        from .protocol import MAX_LENGTH, Opcode, expected_length, frame_response_length
        slots = self.buffer_rows * self.lanes
        longest = max(frame_response_length(self, slots, self.max_layers),
                      expected_length(self, Opcode.FRAME, inputs=slots))
        if longest > MAX_LENGTH:
            name, value, fix = (
                ("buffer_depth", self.buffer_depth, "raise stream_width") if self.buffer_depth
                else ("max_neurons", self.max_neurons, "raise lanes or stream_width"))
            raise ConfigError(
                f"a frame of {name}={value} needs {longest} stream words, more than a "
                f"command's {MAX_LENGTH}; lower {name} or {fix}")
        if self.acc_width > 53:
            raise ConfigError(
                f"the derived accumulator width {self.acc_width} exceeds 53 bits; "
                "lower weight_width, centroid_width or max_neurons")

    # -- derived widths ---------------------------------------------------------------------

    @property
    def index_width(self) -> int:
        """Bits of a cluster index."""
        return max(1, _ceil_log2(self.clusters))

    @property
    def delta_width(self) -> int:
        """Bits of the value a MAC lane multiplies a weight by: a centroid difference
        ``centroid[new] - centroid[old]`` with reuse, the activation itself without."""
        return self.centroid_width + 1 if self.reuse else self.act_width

    @property
    def frame_input_width(self) -> int:
        """Bits of one layer-0 input in a FRAME command: a cluster index with reuse, a
        fixed-point activation without."""
        return self.index_width if self.reuse else self.act_width

    @property
    def interval_width(self) -> int:
        """Bits of each end of an input's interval of doubled values that quantize alike (the
        change detector's state): two more than a centroid, since thresholds are sums of two
        centroids, the ends of the range reach ``2 * centroid - 1``, and the open ends are the
        width's extremes, beyond any doubled activation."""
        return self.centroid_width + 2

    @property
    def bias_width(self) -> int:
        """Bits of a bias (the width of one weight-by-centroid product)."""
        return self.weight_width + self.centroid_width

    @property
    def max_shift(self) -> int:
        """Largest per-layer shift (weight fractional bits): one below the product width."""
        return self.weight_width + self.centroid_width - 1

    @property
    def acc_width(self) -> int:
        """Accumulator bits, derived so that no accumulation can overflow.

        ``|acc| <= |bias| + max_neurons * |w|max * |c|max``, with the most negative values
        of each signed width.
        """
        bias_max = 1 << (self.bias_width - 1)
        product_max = (1 << (self.weight_width - 1)) * (1 << (self.centroid_width - 1))
        return signed_bits_for(bias_max + self.max_neurons * product_max)

    @property
    def max_inputs(self) -> int:
        """The most inputs a layer has: the I/O buffer's slots."""
        return self.buffer_rows * self.lanes

    @property
    def max_items_per_input(self) -> int:
        """The most MAC items one changed input can cost: ``max_groups`` output groups, in
        every window of a ``max_kernel`` square kernel that holds it with conv layers."""
        return self.max_groups * max(1, self.max_kernel) ** 2

    @property
    def layer_cycle_bound(self) -> int:
        """More cycles than any layer of this hardware can take, whatever changed: with ``n``
        changed inputs of ``N <= max_inputs``, the serializer's ``S <= 2N`` cycles, ``I <=
        max_items_per_input`` items per input, a readout of at most ``sum_rows`` rows (times
        the cells of a pool window) and the pipeline constants (under 64 in all), the cycle
        formula (:mod:`reuse_accel.sim.timing`) stays below ``6N + (N + 2)I + R + 64``. It sizes
        the hardware's cycle counters."""
        inputs, items = self.max_inputs, self.max_items_per_input
        readout = self.sum_rows * max(1, self.max_kernel) ** 2
        return 6 * inputs + (inputs + 2) * items + readout + 64

    @property
    def weight_banks(self) -> int:
        """Banks of the weight memory: the weight row's ``lanes * weight_width`` bits in pieces
        of ``weight_bank_width`` (the last one may be narrower)."""
        return -(-self.lanes * self.weight_width // self.weight_bank_width)

    @property
    def max_groups(self) -> int:
        """Rows of L values needed for the widest layer."""
        return -(-self.max_neurons // self.lanes)

    def groups(self, neurons: int) -> int:
        """Rows of L values holding ``neurons`` values."""
        return -(-neurons // self.lanes)

    # -- address widths -----------------------------------------------------------------------

    @property
    def buffer_rows(self) -> int:
        """Rows of each I/O buffer bank (``buffer_depth``, or ``max_groups``)."""
        return self.buffer_depth or self.max_groups

    @property
    def row_bits(self) -> int:
        """Bits of a row number of a layer's inputs or outputs (an I/O buffer address)."""
        return max(1, _ceil_log2(self.buffer_rows))

    @property
    def row_count_bits(self) -> int:
        """Bits of a count of a layer's input or output rows (up to ``buffer_rows``)."""
        return _ceil_log2(self.buffer_rows + 1)

    @property
    def group_bits(self) -> int:
        """Bits of an output group of a layer (a row of L outputs of a dense layer, of L
        output channels of a conv layer; a bias row)."""
        return max(1, _ceil_log2(self.max_groups))

    @property
    def layer_bits(self) -> int:
        """Bits of a layer number."""
        return max(1, _ceil_log2(self.max_layers))

    @property
    def input_bits(self) -> int:
        """Bits of an input number within a layer (a row number and a lane)."""
        return self.row_bits + _ceil_log2(self.lanes)

    @property
    def neuron_count_bits(self) -> int:
        """Bits of a count of inputs or outputs of a layer (up to ``buffer_rows * L``)."""
        return self.input_bits + 1

    @property
    def weight_row_bits(self) -> int:
        """Bits of a weight-memory row address."""
        return max(1, _ceil_log2(self.weight_depth))

    @property
    def group_count_bits(self) -> int:
        """Bits of a count of output groups of a layer (up to ``max_groups``)."""
        return _ceil_log2(self.max_groups + 1)

    @property
    def state_rows(self) -> int:
        """Rows of the input-state memory (``state_depth``, or ``max_layers`` layers of
        ``max_groups`` rows)."""
        return self.state_depth or self.max_layers * self.max_groups

    @property
    def state_row_bits(self) -> int:
        """Bits of an input-state memory row address."""
        return max(1, _ceil_log2(self.state_rows))

    @property
    def sum_rows(self) -> int:
        """Rows of the sum memory (``sum_depth``, or ``max_layers`` layers of ``max_groups``
        rows with reuse and one layer's without)."""
        return self.sum_depth or (self.max_layers if self.reuse else 1) * self.max_groups

    @property
    def sum_row_bits(self) -> int:
        """Bits of a sum-memory row address."""
        return max(1, _ceil_log2(self.sum_rows))

    # -- conv capacities ----------------------------------------------------------------------

    @property
    def conv(self) -> bool:
        """Whether the hardware has conv gateware (``max_kernel`` is not 0)."""
        return self.max_kernel > 0

    @property
    def kernel_bits(self) -> int:
        """Bits of a kernel side or a stride (up to ``max_kernel``)."""
        return max(1, self.max_kernel.bit_length())

    @property
    def tap_bits(self) -> int:
        """Bits of a kernel tap counted past the kernel's end along one axis: an input's first
        tap is below ``kernel + stride`` (:class:`~reuse_accel.hw.layers.conv.AxisTracker`)."""
        return max(1, (2 * self.max_kernel).bit_length())

    @property
    def max_pool_cells(self) -> int:
        """The most cells a pool window holds: ``max_kernel ** 2`` (an average's largest
        divisor)."""
        return self.max_kernel ** 2

    @property
    def pool_numerator_bits(self) -> int:
        """Bits of an average pool's numerator in the readout: a window's activated sum, offset
        by ``divisor * 2**(act_width - 1)`` to be non-negative, plus half the divisor; below
        ``max_kernel**2 * 2**act_width``
        (:func:`~reuse_accel.hw.core.mac.average_divider`)."""
        return (self.max_pool_cells * (1 << self.act_width) - 1).bit_length()

    def coordinate_bits(self, size: int) -> int:
        """Bits of a coordinate along a map axis of ``size`` positions, or of the convolution's
        output along it (at most ``size + max_kernel - 1`` positions with padding below the
        kernel)."""
        return max(1, (size + self.max_kernel).bit_length())

    @property
    def words_per_counter_row(self) -> int:
        return self.stream_width // COUNTER_WIDTH

    # -- value ranges -----------------------------------------------------------------------

    @property
    def act_min(self) -> int:
        return -(1 << (self.act_width - 1))

    @property
    def act_max(self) -> int:
        return (1 << (self.act_width - 1)) - 1

    @property
    def weight_min(self) -> int:
        return -(1 << (self.weight_width - 1))

    @property
    def weight_max(self) -> int:
        return (1 << (self.weight_width - 1)) - 1

    @property
    def centroid_min(self) -> int:
        return -(1 << (self.centroid_width - 1))

    @property
    def centroid_max(self) -> int:
        return (1 << (self.centroid_width - 1)) - 1

    @property
    def bias_min(self) -> int:
        return -(1 << (self.bias_width - 1))

    @property
    def bias_max(self) -> int:
        return (1 << (self.bias_width - 1)) - 1

    # -- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Parameters and derived widths, as written to reports and ``config.toml``."""
        params = dataclasses.asdict(self)
        derived = {
            "index_width": self.index_width,
            "delta_width": self.delta_width,
            "bias_width": self.bias_width,
            "acc_width": self.acc_width,
            "max_shift": self.max_shift,
        }
        return {**params, "derived": derived}

    def to_toml(self) -> str:
        lines = ["# reuse-accel hardware configuration", "[accelerator]"]
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            text = str(value).lower() if isinstance(value, bool) else str(value)
            lines.append(f"{field.name} = {text}")
        lines.append("")
        lines.append("# derived (read-only)")
        for name, value in self.to_dict()["derived"].items():
            lines.append(f"# {name} = {value}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, values: dict) -> AccelConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - {"derived"})
        if unknown:
            raise ConfigError(
                f"unknown configuration parameter {unknown[0]!r}; "
                f"known parameters are {', '.join(sorted(known))}")
        return cls(**{key: value for key, value in values.items() if key in known})

    @classmethod
    def from_toml(cls, path: str | Path) -> AccelConfig:
        """Read a configuration file with an ``[accelerator]`` table."""
        path = Path(path)
        name = f"configuration file {str(path)!r}"
        if path.is_dir():
            raise ConfigError(f"{name} is a directory, not a TOML file")
        try:
            document = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{name} does not exist") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{name} is a binary file, not a TOML text file with an "
                              "[accelerator] table") from None
        except OSError as error:
            raise ConfigError(f"{name} cannot be read: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"configuration file {str(path)!r} is not valid TOML: {error}")\
                from None
        if "accelerator" not in document:
            raise ConfigError(
                f"configuration file {str(path)!r} has no [accelerator] table")
        return cls.from_dict(document["accelerator"])


def check_config(config) -> AccelConfig:
    """The ``config`` argument of a gateware component, checked."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    return config
