"""The float network (``sw/network.py``): layers, shapes, the float reference, frame files.

Expected values come from plain NumPy written here (a forward pass per layer, the documented
.npz form), not from the code under test.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sw.network import (
    InputError,
    Layer,
    Network,
    check_frames,
    load_frames,
    load_labels,
)


def dense(outputs, inputs, activation="identity", seed=0):
    rng = np.random.default_rng(seed)
    return Layer(rng.normal(0, 0.5, (outputs, inputs)), rng.normal(0, 0.2, outputs),
                 activation)


def raises(message):
    return pytest.raises(InputError, match="^" + re.escape(message) + "$")


# -- Network ------------------------------------------------------------------------------------

def test_forward_flattens_the_frame_in_c_order():
    first, second = dense(4, 6, "relu", seed=1), dense(3, 4, seed=2)
    network = Network((2, 3), [first, second])
    frames = np.random.default_rng(3).normal(size=(5, 2, 3))
    flat = frames.reshape(5, 6)
    hidden = np.maximum(flat @ first.weight.T + first.bias, 0)
    want = hidden @ second.weight.T + second.bias
    np.testing.assert_allclose(network.forward(frames), want, rtol=1e-12)
    inputs = network.layer_inputs(frames)
    np.testing.assert_array_equal(inputs[0], flat)
    np.testing.assert_allclose(inputs[1], hidden, rtol=1e-12)
    assert network.inputs == 6 and network.outputs == 3 and network.sizes == [6, 4, 3]
    assert [layer.kind for layer in network.layers] == [LayerKind.DENSE] * 2


def test_network_checks_its_shapes():
    with raises("the weight takes 6 inputs but the input shape (2, 2) holds 4 values"):
        Network((2, 2), [dense(4, 6)])
    with raises("the weight takes 5 inputs but layer 0 has 4 outputs"):
        Network((6,), [dense(4, 6), dense(3, 5)])
    with raises("the model has no layers"):
        Network((6,), [])
    with raises("the input shape must hold positive sizes, not (0, 3)"):
        Network((0, 3), [dense(4, 6)])


def test_layer_checks_its_activation_and_arrays():
    with raises("the activation must be one of relu, identity, not 'tanh'"):
        dense(2, 3, "tanh")
    with raises("w3 must hold real numbers, not bool"):
        Layer(np.ones((2, 3), bool), np.zeros(2), names=("w3", "b3"))
    with raises("the bias must have shape (2,) to match the weight (2, 3), not (3,)"):
        Layer(np.ones((2, 3)), np.zeros(3))


def test_npz_form_round_trips_and_refuses_other_forms(tmp_path):
    network = Network.from_weights([dense(4, 6).weight, dense(3, 4).weight],
                                   [np.zeros(4), np.ones(3)])
    assert [layer.activation for layer in network.layers] == ["relu", "identity"]
    path = tmp_path / "m.npz"
    network.save_npz(path)
    again = Network.load(path)
    for mine, theirs in zip(network.layers, again.layers):
        np.testing.assert_array_equal(mine.weight.astype(np.float32), theirs.weight)
    with raises("only a network of dense layers on a vector input with ReLU between them and "
                "a linear last layer has an .npz form"):
        Network((2, 3), [dense(4, 6)]).save_npz(tmp_path / "x.npz")


def test_integer_weights_are_numbers(tmp_path):
    """Integers are accepted everywhere real numbers are: weights as well as frames."""
    rng = np.random.default_rng(4)
    weight = rng.integers(-3, 4, (3, 5))
    bias = rng.integers(-2, 3, 3)
    path = tmp_path / "ints.npz"
    np.savez(path, w0=weight.astype(np.int16), b0=bias)
    network = Network.load(path)
    frames = rng.integers(-5, 6, (4, 5))
    np.testing.assert_array_equal(network.forward(frames), frames @ weight.T + bias)


# -- frames -------------------------------------------------------------------------------------

def test_frames_of_a_multi_dimensional_input():
    frames = np.zeros((3, 2, 3, 4))
    assert check_frames(frames, (2, 3, 4)).shape == (3, 2, 3, 4)
    with raises("frames must have shape (T, 2, 3, 4) with T >= 1 for a model whose input "
                "frame is (2, 3, 4), not (3, 24)"):
        check_frames(np.zeros((3, 24)), (2, 3, 4))
    frames[1, 0, 2, 3] = np.nan
    with raises("frames contain 1 NaN or infinite values (first at frame 1, input (0, 2, 3)); "
                "clean or impute them before running"):
        check_frames(frames, (2, 3, 4))
    with raises("frames must have shape (T, 5) with T >= 1 for a model with 5 inputs, not ()"):
        check_frames(np.float64(3.0), 5)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, np.float16])
def test_integer_and_float_frames_are_accepted(tmp_path, dtype):
    path = tmp_path / "f.npy"
    values = np.arange(10).reshape(2, 5)
    np.save(path, values.astype(dtype))
    loaded = load_frames(path, 5)
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, values)


@pytest.mark.parametrize("array, dtype", [(np.ones((2, 5), bool), "bool"),
                                          (np.ones((2, 5), complex), "complex128")])
def test_frames_that_are_not_real_numbers(tmp_path, array, dtype):
    path = tmp_path / "f.npy"
    np.save(path, array)
    with raises(f"frames in {str(path)!r} must hold real numbers, not {dtype}"):
        load_frames(path, 5)


def test_files_that_are_not_npy_arrays(tmp_path):
    text = tmp_path / "frames.npy"
    text.write_text("0.1 0.2 0.3\n0.4 0.5 0.6\n")
    with raises(f"frames file {str(text)!r} is a text file, not a NumPy .npy array; read the "
                "text with numpy.loadtxt and write the array with numpy.save"):
        load_frames(text, 3)
    binary = tmp_path / "binary.npy"
    binary.write_bytes(bytes(range(255, -1, -1)))
    with raises(f"frames file {str(binary)!r} is not a NumPy .npy array (it lacks the NumPy or "
                "zip header); write the array with numpy.save"):
        load_frames(binary, 3)
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with raises(f"frames file {str(empty)!r} is empty, not a NumPy .npy array"):
        load_frames(empty, 3)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([[1, "a", None]], dtype=object), allow_pickle=True)
    with raises(f"frames file {str(objects)!r} holds Python objects (pickled data), not "
                "numbers; write a numeric array with numpy.save"):
        load_frames(objects, 3)
    with raises(f"frames file {str(tmp_path)!r} is a directory, not a NumPy .npy array"):
        load_frames(tmp_path, 3)
    archive = tmp_path / "frames.npz"
    np.savez(archive, frames=np.zeros((2, 3)))
    with raises(f"frames file {str(archive)!r} is an .npz archive; save the (T, inputs) array "
                "with numpy.save"):
        load_frames(archive, 3)
    with raises(f"labels file {str(text)!r} is a text file, not a NumPy .npy array; read the "
                "text with numpy.loadtxt and write the array with numpy.save"):
        load_labels(text, 2, 3)
