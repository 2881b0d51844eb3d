"""AccelConfig: validation (with exact messages), derived widths, TOML serialisation."""

import itertools
import re
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reuse_accel.hw.config import AccelConfig, ConfigError

# The documented parameter ranges, inclusive (the contract the messages state).
LIMITS = {
    "lanes": (1, 64),
    "clusters": (2, 128),
    "act_width": (4, 32),
    "act_frac": (0, 31),
    "weight_width": (2, 18),
    "centroid_width": (4, 32),
    "max_layers": (1, 16),
    "max_neurons": (1, 65535),
    "weight_depth": (1, 1 << 24),
    "stream_width": (32, 256),
    "weight_bank_width": (1, 1152),
    "max_kernel": (0, 32),
    "max_height": (1, 4096),
    "max_width": (1, 4096),
    "buffer_depth": (0, 1 << 15),
    "state_depth": (0, 1 << 22),
    "sum_depth": (0, 1 << 22),
}

# Extra parameters that make a boundary value legal on its own (e.g. act_frac=31 needs a
# 32-bit activation).
BOUNDARY_COMPANIONS = {
    ("act_width", 4): {"act_frac": 0},
    ("act_width", 32): {"centroid_width": 32, "stream_width": 64},
    ("act_frac", 31): {"act_width": 32, "centroid_width": 32, "stream_width": 64},
    ("centroid_width", 32): {"stream_width": 64},
    ("weight_width", 18): {"stream_width": 64},
    ("centroid_width", 4): {"act_width": 4, "act_frac": 0},
    # a row of 8 outputs in one 128-bit word: 32768 output rows fit a response
    ("buffer_depth", 1 << 15): {"stream_width": 128},
}

KNOWN = ("act_frac, act_width, buffer_depth, centroid_width, clusters, lanes, max_height, "
         "max_kernel, max_layers, max_neurons, max_width, reuse, state_depth, stream_width, "
         "sum_depth, weight_bank_width, weight_depth, weight_width")


def raises_exactly(message):
    return pytest.raises(ConfigError, match=f"^{re.escape(message)}$")


def min_signed_width(low: int, high: int) -> int:
    """Fewest two's-complement bits holding every integer of [low, high] (by search)."""
    bits = 1
    while not (-(2 ** (bits - 1)) <= low and high <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


def fits(value: int, bits: int) -> bool:
    return -(2 ** (bits - 1)) <= value <= 2 ** (bits - 1) - 1


def docstring_bound(config: AccelConfig) -> int:
    """``|bias| + max_neurons * |w|max * |c|max`` with the most negative value of each width."""
    bias = 2 ** (config.bias_width - 1)
    weight = 2 ** (config.weight_width - 1)
    centroid = 2 ** (config.centroid_width - 1)
    return bias + config.max_neurons * weight * centroid


def product_extremes(config: AccelConfig) -> tuple[int, int]:
    """Smallest and largest weight-by-centroid product (a bilinear form: extremes at corners)."""
    weights = (-(2 ** (config.weight_width - 1)), 2 ** (config.weight_width - 1) - 1)
    centroids = (-(2 ** (config.centroid_width - 1)), 2 ** (config.centroid_width - 1) - 1)
    products = [w * c for w, c in itertools.product(weights, centroids)]
    return min(products), max(products)


# -- construction ----------------------------------------------------------------------------

def test_defaults_are_valid():
    config = AccelConfig()
    assert (config.lanes, config.clusters, config.act_width, config.act_frac) == (8, 16, 16, 8)


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_each_parameter_below_range(name):
    low, high = LIMITS[name]
    with raises_exactly(f"{name} must be between {low} and {high}, not {low - 1}"):
        AccelConfig(**{name: low - 1})


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_each_parameter_above_range(name):
    low, high = LIMITS[name]
    with raises_exactly(f"{name} must be between {low} and {high}, not {high + 1}"):
        AccelConfig(**{name: high + 1})


@pytest.mark.parametrize("name,value", [(name, bound) for name in sorted(LIMITS)
                                        for bound in LIMITS[name]])
def test_range_ends_are_accepted(name, value):
    extra = BOUNDARY_COMPANIONS.get((name, value), {})
    config = AccelConfig(**{name: value, **extra})
    assert getattr(config, name) == value


@pytest.mark.parametrize("value", ["8", 8.0, None, True])
def test_non_integer_parameter(value):
    with raises_exactly(f"lanes must be an integer, not {value!r}"):
        AccelConfig(lanes=value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("lanes", [3, 6, 12, 48, 63])
def test_lanes_not_power_of_two(lanes):
    with raises_exactly(f"lanes must be a power of two, not {lanes}"):
        AccelConfig(lanes=lanes)


@pytest.mark.parametrize("clusters", [3, 12, 24, 100, 127])
def test_clusters_not_power_of_two(clusters):
    with raises_exactly(f"clusters must be a power of two, not {clusters}"):
        AccelConfig(clusters=clusters)


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16, 32, 64])
def test_every_power_of_two_lane_count_is_accepted(lanes):
    assert AccelConfig(lanes=lanes).lanes == lanes


@pytest.mark.parametrize("act_width,act_frac", [(16, 16), (16, 20), (8, 8), (4, 31)])
def test_act_frac_not_below_act_width(act_width, act_frac):
    with raises_exactly(
            f"act_frac must be less than act_width ({act_width}), not {act_frac}"):
        AccelConfig(act_width=act_width, act_frac=act_frac, centroid_width=32)


def test_act_frac_one_below_act_width_is_accepted():
    assert AccelConfig(act_width=12, act_frac=11).act_frac == 11


@pytest.mark.parametrize("act_width,centroid_width", [(16, 15), (16, 8), (32, 31), (5, 4)])
def test_centroid_narrower_than_activation(act_width, centroid_width):
    with raises_exactly(f"centroid_width must be at least act_width ({act_width}), "
                        f"not {centroid_width}"):
        AccelConfig(act_width=act_width, act_frac=0, centroid_width=centroid_width)


def test_centroid_as_wide_as_activation_is_accepted():
    assert AccelConfig(act_width=12, centroid_width=12).centroid_width == 12


@pytest.mark.parametrize("clusters,act_width,bits", [(32, 4, 5), (64, 5, 6), (128, 6, 7)])
def test_index_wider_than_activation(clusters, act_width, bits):
    with raises_exactly(
            f"clusters={clusters} needs {bits}-bit indices, wider than act_width={act_width}; "
            "raise act_width or lower clusters"):
        AccelConfig(clusters=clusters, act_width=act_width, act_frac=0)


@pytest.mark.parametrize("clusters,act_width", [(16, 4), (32, 5), (128, 7)])
def test_index_as_wide_as_activation_is_accepted(clusters, act_width):
    config = AccelConfig(clusters=clusters, act_width=act_width, act_frac=0)
    assert config.index_width == act_width


@pytest.mark.parametrize("stream_width", [33, 48, 100, 136, 250])
def test_stream_width_not_multiple_of_32(stream_width):
    with raises_exactly(f"stream_width must be a multiple of 32, not {stream_width}"):
        AccelConfig(stream_width=stream_width)


@pytest.mark.parametrize("stream_width", [32, 64, 96, 128, 256])
def test_stream_width_multiples_of_32_are_accepted(stream_width):
    assert AccelConfig(stream_width=stream_width).stream_width == stream_width


def test_accumulator_too_wide():
    params = dict(weight_width=18, centroid_width=32, act_width=16, max_neurons=65535,
                  stream_width=64)
    # Independent width: bias 2**49 plus 65535 products of 2**17 * 2**31.
    bound = 2 ** 49 + 65535 * 2 ** 48
    width = min_signed_width(-bound, bound)
    assert width > 53
    with raises_exactly(f"the derived accumulator width {width} exceeds 53 bits; "
                        "lower weight_width, centroid_width or max_neurons"):
        AccelConfig(**params)


def test_accumulator_limit_is_exactly_53_bits():
    # With 18-bit weights and 32-bit centroids the bound is 2**48 * (2 + max_neurons): the
    # largest max_neurons still within 53 bits is the last one whose bound is below 2**52.
    params = dict(weight_width=18, centroid_width=32, stream_width=64)
    widths = {n: min_signed_width(-(2 ** 48) * (2 + n), 2 ** 48 * (2 + n)) for n in (13, 14)}
    assert widths == {13: 53, 14: 54}
    assert AccelConfig(max_neurons=13, **params).acc_width == 53
    with raises_exactly("the derived accumulator width 54 exceeds 53 bits; "
                        "lower weight_width, centroid_width or max_neurons"):
        AccelConfig(max_neurons=14, **params)


def test_config_is_frozen():
    config = AccelConfig()
    with pytest.raises(AttributeError):
        config.lanes = 4  # type: ignore[misc]


def test_parameters_are_keyword_only():
    with pytest.raises(TypeError):
        AccelConfig(8)  # type: ignore[misc]


# -- derived widths --------------------------------------------------------------------------

configs = st.builds(
    lambda weight_width, centroid_width, max_neurons, clusters, lanes: AccelConfig(
        weight_width=weight_width, centroid_width=centroid_width, act_width=16,
        max_neurons=max_neurons, clusters=clusters, lanes=lanes, stream_width=64),
    weight_width=st.integers(2, 12),
    centroid_width=st.integers(16, 24),
    max_neurons=st.integers(1, 4096),
    clusters=st.sampled_from([2, 4, 8, 16, 32, 64, 128]),
    lanes=st.sampled_from([1, 2, 4, 8, 16, 32, 64]),
)


@settings(max_examples=200, deadline=None)
@given(configs)
def test_acc_width_holds_the_documented_bound_and_no_less(config):
    bound = docstring_bound(config)
    width = config.acc_width
    assert fits(bound, width) and fits(-bound, width)
    assert not (fits(bound, width - 1) and fits(-bound, width - 1))


@settings(max_examples=200, deadline=None)
@given(configs)
def test_acc_width_holds_every_reachable_accumulator(config):
    # The accumulator always holds bias + sum of max_neurons weight-by-centroid products.
    low_product, high_product = product_extremes(config)
    most_negative = config.bias_min + config.max_neurons * low_product
    most_positive = config.bias_max + config.max_neurons * high_product
    assert fits(most_negative, config.acc_width)
    assert fits(most_positive, config.acc_width)
    # The brief's corner: the most negative bias plus max_neurons of the largest product.
    corner = config.bias_min + config.max_neurons * config.weight_min * config.centroid_min
    assert fits(corner, config.acc_width)


@pytest.mark.parametrize("weight_width,centroid_width,max_neurons", [
    (8, 16, 512), (2, 4, 1), (3, 4, 3), (18, 32, 13), (6, 10, 16), (8, 16, 65535),
])
def test_acc_width_is_tight_for_non_power_of_two_growth(weight_width, centroid_width,
                                                        max_neurons):
    # For these sizes the reachable positive extreme needs every bit of acc_width.
    config = AccelConfig(weight_width=weight_width, centroid_width=centroid_width,
                         act_width=min(centroid_width, 16), act_frac=0, clusters=4,
                         max_neurons=max_neurons, stream_width=64)
    low_product, high_product = product_extremes(config)
    most_positive = config.bias_max + max_neurons * high_product
    most_negative = config.bias_min + max_neurons * low_product
    assert config.acc_width == min_signed_width(most_negative, most_positive)


@settings(max_examples=100, deadline=None)
@given(configs)
def test_bias_and_delta_widths(config):
    low_product, high_product = product_extremes(config)
    # A bias is as wide as one product, and no narrower width holds one.
    assert config.bias_width == min_signed_width(low_product, high_product)
    assert (config.bias_min, config.bias_max) == (-(2 ** (config.bias_width - 1)),
                                                  2 ** (config.bias_width - 1) - 1)
    # centroid[new] - centroid[old] spans +-(2**centroid_width - 1).
    span = (2 ** (config.centroid_width - 1) - 1) + 2 ** (config.centroid_width - 1)
    assert config.delta_width == min_signed_width(-span, span)
    # every weight format up to all-fractional bits must be expressible as a layer shift
    assert config.max_shift >= config.weight_width


@pytest.mark.parametrize("clusters,bits", [(2, 1), (4, 2), (8, 3), (16, 4), (32, 5),
                                           (128, 7)])
def test_index_width(clusters, bits):
    config = AccelConfig(clusters=clusters)
    assert config.index_width == bits
    assert 2 ** config.index_width >= clusters > 2 ** (config.index_width - 1)


def test_value_ranges():
    config = AccelConfig(act_width=10, act_frac=3, weight_width=5, centroid_width=12)
    assert (config.act_min, config.act_max) == (-512, 511)
    assert (config.weight_min, config.weight_max) == (-16, 15)
    assert (config.centroid_min, config.centroid_max) == (-2048, 2047)
    assert (config.bias_min, config.bias_max) == (-(2 ** 16), 2 ** 16 - 1)


@pytest.mark.parametrize("lanes,neurons,groups", [
    (4, 1, 1), (4, 4, 1), (4, 5, 2), (4, 16, 4), (4, 17, 5), (8, 512, 64), (1, 7, 7),
])
def test_groups(lanes, neurons, groups):
    config = AccelConfig(lanes=lanes, max_neurons=max(neurons, 1))
    assert config.groups(neurons) == groups
    assert config.max_groups == groups


@pytest.mark.parametrize("stream_width,words", [(32, 1), (64, 2), (128, 4), (256, 8)])
def test_words_per_counter_row(stream_width, words):
    assert AccelConfig(stream_width=stream_width).words_per_counter_row == words


# -- serialisation ---------------------------------------------------------------------------

ROUND_TRIP = [
    AccelConfig(),
    AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                centroid_width=10, max_layers=2, max_neurons=16, weight_depth=64,
                stream_width=64),
    AccelConfig(lanes=64, clusters=128, act_width=32, act_frac=31, weight_width=2,
                centroid_width=32, max_layers=16, max_neurons=65535, weight_depth=1 << 24,
                stream_width=256),
]


@pytest.mark.parametrize("config", ROUND_TRIP)
def test_toml_round_trip(config, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    assert AccelConfig.from_toml(path) == config
    assert AccelConfig.from_toml(str(path)) == config


@pytest.mark.parametrize("config", ROUND_TRIP)
def test_toml_documents_derived_widths(config):
    document = tomllib.loads(config.to_toml())
    assert set(document) == {"accelerator"}
    assert document["accelerator"]["lanes"] == config.lanes
    text = config.to_toml()
    for name in ("index_width", "delta_width", "bias_width", "acc_width", "max_shift"):
        assert f"# {name} = {getattr(config, name)}\n" in text


@pytest.mark.parametrize("config", ROUND_TRIP)
def test_dict_round_trip_ignores_derived(config):
    values = config.to_dict()
    assert values["derived"] == {
        "index_width": config.index_width, "delta_width": config.delta_width,
        "bias_width": config.bias_width, "acc_width": config.acc_width,
        "max_shift": config.max_shift,
    }
    assert AccelConfig.from_dict(values) == config


def test_from_dict_partial_uses_defaults():
    assert AccelConfig.from_dict({"lanes": 4}) == AccelConfig(lanes=4)


def test_from_dict_unknown_key():
    with raises_exactly(f"unknown configuration parameter 'lane'; known parameters are {KNOWN}"):
        AccelConfig.from_dict({"lane": 4})


def test_from_dict_reports_first_unknown_key_alphabetically():
    with raises_exactly(f"unknown configuration parameter 'alpha'; "
                        f"known parameters are {KNOWN}"):
        AccelConfig.from_dict({"zeta": 1, "lanes": 4, "alpha": 2})


def test_from_dict_validates_values():
    with raises_exactly("lanes must be a power of two, not 6"):
        AccelConfig.from_dict({"lanes": 6})


def test_from_toml_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    with raises_exactly(f"configuration file {str(path)!r} does not exist"):
        AccelConfig.from_toml(path)


def test_from_toml_directory_and_binary_file(tmp_path):
    with raises_exactly(f"configuration file {str(tmp_path)!r} is a directory, not a TOML file"):
        AccelConfig.from_toml(tmp_path)
    binary = tmp_path / "design.bin"
    binary.write_bytes(bytes(range(256)))
    with raises_exactly(f"configuration file {str(binary)!r} is a binary file, not a TOML text "
                        "file with an [accelerator] table"):
        AccelConfig.from_toml(binary)


def test_synth_reports_a_config_directory_without_a_traceback(tmp_path, capsys):
    from reuse_accel.sw.cli import main

    assert main(["synth", "--target", "generic", "--config", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"reuse-accel: error: configuration file "
                                       f"{str(tmp_path)!r} is a directory, not a TOML file\n")


def test_from_toml_bad_toml(tmp_path):
    text = "[accelerator]\nlanes = = 4\n"
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(tomllib.TOMLDecodeError) as decode:
        tomllib.loads(text)
    with raises_exactly(f"configuration file {str(path)!r} is not valid TOML: {decode.value}"):
        AccelConfig.from_toml(path)


def test_from_toml_missing_table(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text("[accel]\nlanes = 4\n")
    with raises_exactly(f"configuration file {str(path)!r} has no [accelerator] table"):
        AccelConfig.from_toml(path)


def test_from_toml_unknown_key(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("[accelerator]\nlanes = 4\nclusterz = 16\n")
    with raises_exactly(
            f"unknown configuration parameter 'clusterz'; known parameters are {KNOWN}"):
        AccelConfig.from_toml(path)


def test_from_toml_wrong_type(tmp_path):
    path = tmp_path / "string.toml"
    path.write_text('[accelerator]\nlanes = "4"\n')
    with raises_exactly("lanes must be an integer, not '4'"):
        AccelConfig.from_toml(path)


def test_frame_longer_than_a_command_is_rejected():
    # One lane: every output is a row of its own, one 32-bit word each, so 65535 outputs take
    # 65535 words, plus 1 + 6 * 4 = 25 counter words: 65560 > 65535.
    with raises_exactly("a frame of max_neurons=65535 needs 65560 stream words, more than a "
                        "command's 65535; lower max_neurons or raise lanes or stream_width"):
        AccelConfig(lanes=1, max_neurons=65535, weight_depth=1 << 16)
    assert AccelConfig(lanes=1, max_neurons=65510, weight_depth=1 << 16).max_neurons == 65510
    # A deeper I/O buffer (for conv maps) holds frames that long too.
    # (one lane per row, 32768 rows: 32768 + 25 words, the rest as above; 8 lanes of 16 bits
    # take 4 words a row)
    assert AccelConfig(lanes=1, max_neurons=8, buffer_depth=32768).buffer_rows == 32768
    with raises_exactly("a frame of buffer_depth=32768 needs 131097 stream words, more than a "
                        "command's 65535; lower buffer_depth or raise stream_width"):
        AccelConfig(buffer_depth=32768)


def test_buffer_depth_holds_a_dense_layer_of_max_neurons():
    with raises_exactly("buffer_depth must be 0 or at least max_groups = 64 (a layer of "
                        "max_neurons=512), not 63"):
        AccelConfig(buffer_depth=63)
    assert AccelConfig(buffer_depth=64).buffer_rows == 64
    assert AccelConfig().buffer_rows == 64
