"""Golden-model speed on an EESEN-sized LSTM (input 440, hidden 320, 4 unidirectional layers,
then a dense layer of 48 outputs; about 3.4M parameters), one time step per frame.

Targets: at least 100 time steps/s with reuse on, on the shipped speech frames (tiled to the
requested length), counters and cycle prediction included; and with the other core busy (a
spinning process), at least 80% of that.

    python benches/bench_golden_lstm.py [--frames N]
"""

import argparse
import sys

import numpy as np
from busy import idle_and_loaded

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.recurrent import RecurrentShape
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.model import GoldenModel
from reuse_accel.sw.cli import demo_data
from reuse_accel.sw.compiler import compile_model
from reuse_accel.sw.network import Layer, Network

INPUTS, HIDDEN, LAYERS, OUTPUTS = 440, 320, 4, 48
TARGET = 100.0
LOADED_SHARE = 0.8


def eesen(rng: np.random.Generator) -> Network:
    layers, inputs = [], INPUTS
    for _ in range(LAYERS):
        fan_in = inputs + HIDDEN
        layers.append(Layer(rng.normal(0, 1 / np.sqrt(fan_in), (4 * HIDDEN, fan_in)),
                            rng.normal(0, 0.1, 4 * HIDDEN), kind=LayerKind.LSTM,
                            recurrent=RecurrentShape("lstm", inputs, HIDDEN)))
        inputs = HIDDEN
    layers.append(Layer(rng.normal(0, 1 / np.sqrt(HIDDEN), (OUTPUTS, HIDDEN)),
                        rng.normal(0, 0.1, OUTPUTS)))
    return Network((INPUTS,), layers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    args = parser.parse_args()

    network = eesen(np.random.default_rng(0))
    parameters = sum(layer.weight.size + layer.bias.size for layer in network.layers)
    config = AccelConfig(max_layers=8, max_neurons=2048, weight_depth=1 << 20)
    speech = demo_data()["frames"]
    frames = np.resize(speech, (args.frames, speech.shape[1]))
    compiled = compile_model(network, config, frames[:200])
    indices, _ = compiled.quantize_frames(frames)
    model = GoldenModel(config, compiled.layers)

    results, seconds, rate, loaded = idle_and_loaded(model, indices)
    changed = sum(int(r.changed_inputs[:LAYERS].sum()) for r in results[1:])
    inputs = (INPUTS + HIDDEN + (LAYERS - 1) * 2 * HIDDEN) * (len(frames) - 1)
    print(f"golden model, LSTM {INPUTS}-{HIDDEN} x {LAYERS} layers, dense {OUTPUTS} "
          f"({parameters / 1e6:.2f}M parameters)")
    print(f"  {len(frames)} time steps in {seconds:.2f} s: {rate:.0f} steps/s "
          f"(target >= {TARGET:.0f}): {'met' if rate >= TARGET else 'MISSED'}")
    print(f"  other core busy: {loaded:.0f} steps/s, {loaded / rate:.0%} of idle (target >= "
          f"{LOADED_SHARE:.0%}): {'met' if loaded >= LOADED_SHARE * rate else 'MISSED'}")
    print(f"  input similarity of the LSTM layers (x and h) {1 - changed / inputs:.1%}, "
          f"predicted cycles {sum(r.cycles for r in results)}")
    return 0 if rate >= TARGET and loaded >= LOADED_SHARE * rate else 1


if __name__ == "__main__":
    sys.exit(main())
