"""Run reports: the JSON that ``reuse-accel run --json`` writes, and its text summary.

Definitions
-----------
- **Input similarity**: the share of layer inputs whose cluster index equals the previous
  frame's, over all frames after the first (a recurrent layer's inputs are ``x_t`` and
  ``h_{t-1}``).
- **Computation reuse**: the share of multiply-accumulates avoided, over all frames, against
  the same frames in baseline mode.
- **Ideal speedup**: the MAC array's weight-row cycles without reuse over those with reuse,
  summed over layers and frames, from the hardware's counters:
  ``sum(frames[].baseline_weight_rows) / sum(frames[].weight_rows)`` (for dense layers,
  ``sum(inputs * groups) / sum(changed * groups)``); ``reuse_efficiency`` is the measured
  speedup over it.

Besides the summary, the report holds the configuration the hardware was generated with
(``config``), per layer its kind, sizes, shapes (and a conv layer's kernel, stride, padding and
pool) and totals (``layers``), per frame the counters
(``frames``: cycles, changed inputs, weight rows with and without reuse, out-of-range inputs,
saturated outputs, each per layer; a recurrent layer's entry in ``layers`` adds its ``hidden``
size and the similarity of ``x_t`` and of ``h_{t-1}``), the accelerator's ``outputs`` and the
float network's ``reference_outputs`` (T x outputs each).
"""

from __future__ import annotations

import numpy as np

from .driver import Run

__all__ = ["OUT_OF_RANGE_WARNING", "build_report", "format_summary", "out_of_range_warnings",
           "score"]

OUT_OF_RANGE_WARNING = 0.01
"""Share of a layer's inputs outside the calibrated range above which a run warns."""


def build_report(reuse: Run, baseline: Run, *, backend: str, labels=None,
                 simulation: dict | None = None, board: dict | None = None) -> dict:
    compiled = reuse.compiled
    config = compiled.config
    layers = compiled.layers
    count = len(reuse.frames)
    # Every input the change detector compares: a recurrent layer's x_t and h_{t-1}.
    inputs = np.array([layer.input_layout.size for layer in layers])
    changed = np.stack([frame.changed_inputs for frame in reuse.frames])        # (T, layers)
    macs = np.stack([frame.macs for frame in reuse.frames])
    weight_rows = np.stack([frame.weight_rows for frame in reuse.frames])
    baseline_weight_rows = np.stack([frame.weight_rows for frame in baseline.frames])
    baseline_macs = np.stack([frame.macs for frame in baseline.frames])
    out_of_range = np.stack([frame.out_of_range for frame in reuse.frames])
    saturated = np.stack([frame.saturated_outputs for frame in reuse.frames])

    hidden = np.stack([frame.changed_hidden if frame.changed_hidden is not None
                       else np.zeros(len(layers), np.int64) for frame in reuse.frames])
    later = changed[1:] if count > 1 else np.zeros((0, len(layers)), np.int64)
    later_inputs = inputs * max(count - 1, 0)
    layer_similarity = [
        1.0 - later[:, n].sum() / later_inputs[n] if later_inputs[n] else None
        for n in range(len(layers))]
    similarity = 1.0 - later.sum() / later_inputs.sum() if later_inputs.sum() else None
    layer_reuse = 1.0 - macs.sum(axis=0) / baseline_macs.sum(axis=0)
    reuse_share = 1.0 - macs.sum() / baseline_macs.sum()

    outputs = reuse.outputs
    reference = compiled.network.forward(reuse.inputs)
    error = float(np.max(np.abs(outputs - reference)))
    cycles, baseline_cycles = reuse.cycles, baseline.cycles
    ideal = float(baseline_weight_rows.sum() / weight_rows.sum()) if weight_rows.sum() else None
    speedup = baseline_cycles / cycles
    summary = {
        "frames": count,
        "cycles": cycles,
        "baseline_cycles": baseline_cycles,
        "speedup": speedup,
        "ideal_speedup": ideal,
        "reuse_efficiency": speedup / ideal if ideal else None,
        "input_similarity": similarity,
        "computation_reuse": float(reuse_share),
        "max_abs_error_vs_float": error,
        "out_of_range_inputs": int(out_of_range.sum()),
        "saturated_outputs": int(saturated.sum()),
        "saturated_weights": compiled.saturated_weights,
        "saturated_biases": compiled.saturated_biases,
        "backend": backend,
    }
    if labels is not None:
        summary.update(score(outputs, reference, labels))
    if simulation:
        summary["simulation"] = simulation
    if board:
        summary["board"] = board
    return {
        "config": config.to_dict(),
        "summary": summary,
        "layers": [
            {
                "kind": layer.kind.name.lower(),
                "inputs": int(layer.inputs),
                "outputs": int(layer.outputs),
                "input_shape": list(source.input_shape),
                "output_shape": list(source.output_shape),
                **_geometry(layer.geometry),
                "input_similarity": layer_similarity[n],
                **_recurrent(layer, changed[1:, n], hidden[1:, n]),
                "computation_reuse": float(layer_reuse[n]),
                "calibrated_range": list(compiled.ranges[n]),
                "shift": int(layer.shift),
                "out_of_range_inputs": int(out_of_range[:, n].sum()),
                "saturated_outputs": int(saturated[:, n].sum()),
                "cycles": int(sum(frame.layer_cycles[n] for frame in reuse.frames)),
                "baseline_cycles": int(sum(frame.layer_cycles[n] for frame in baseline.frames)),
            }
            for n, (layer, source) in enumerate(zip(layers, compiled.network.layers))
        ],
        "frames": [
            {
                "cycles": int(frame.cycles),
                "baseline_cycles": int(base.cycles),
                "changed_inputs": [int(v) for v in frame.changed_inputs],
                "weight_rows": [int(v) for v in weight_rows[t]],
                "baseline_weight_rows": [int(v) for v in baseline_weight_rows[t]],
                "out_of_range_inputs": [int(v) for v in out_of_range[t]],
                "saturated_outputs": [int(v) for v in saturated[t]],
            }
            for t, (frame, base) in enumerate(zip(reuse.frames, baseline.frames))
        ],
        "outputs": outputs.tolist(),
        "reference_outputs": reference.tolist(),
    }


def score(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    """The outputs' and the float network's score against per-frame ``labels``: ``accuracy``
    and ``float_accuracy`` (share of frames whose largest output is the class) for class
    labels, ``mean_abs_error`` and ``float_mean_abs_error`` for real targets (T x outputs)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return {"accuracy": float(np.mean(outputs.argmax(axis=1) == labels)),
                "float_accuracy": float(np.mean(reference.argmax(axis=1) == labels))}
    return {"mean_abs_error": float(np.mean(np.abs(outputs - labels))),
            "float_mean_abs_error": float(np.mean(np.abs(reference - labels)))}


def _recurrent(layer, changed: np.ndarray, hidden: np.ndarray) -> dict:
    """A recurrent layer's hidden size and the similarity of each half of its inputs, ``x_t``
    and ``h_{t-1}``, over the frames after the first."""
    if layer.recurrent is None:
        return {}
    steps = len(changed)
    shape = layer.recurrent
    return {
        "hidden": shape.hidden,
        "x_similarity": 1.0 - (changed.sum() - hidden.sum()) / (shape.inputs * steps)
        if steps else None,
        "h_similarity": 1.0 - hidden.sum() / (shape.hidden * steps) if steps else None,
    }


def _geometry(geometry) -> dict:
    """A conv layer's kernel, stride, padding (top, left, bottom, right) and pool."""
    if geometry is None:
        return {}
    pool = geometry.pool
    return {
        "kernel": list(geometry.kernel),
        "stride": list(geometry.stride),
        "padding": list(geometry.padding),
        "pool": None if pool is None else {
            "mode": pool.mode, "kernel": list(pool.kernel), "stride": list(pool.stride),
            "padding": list(pool.padding), "count_include_pad": pool.count_include_pad},
    }


def _shape(shape) -> str:
    return "x".join(str(size) for size in shape)


def out_of_range_warnings(report: dict, limit: float = OUT_OF_RANGE_WARNING) -> list[str]:
    """One line per layer with more than ``limit`` of its inputs outside the calibrated
    range, naming the layer, the share and the fix."""
    frames = report["summary"]["frames"]
    lines = []
    for number, layer in enumerate(report["layers"]):
        share = layer["out_of_range_inputs"] / (frames * layer["inputs"])
        if share > limit:
            low, high = layer["calibrated_range"]
            lines.append(
                f"{share:.1%} of layer {number}'s inputs fell outside the calibrated range "
                f"[{low:.4g}, {high:.4g}] and were clamped to the end clusters; calibrate on "
                "representative frames with --calibration")
    return lines


def format_summary(report: dict) -> str:
    summary = report["summary"]
    shapes = [f"{_shape(layer['input_shape'])} -> {_shape(layer['output_shape'])}"
              for layer in report["layers"]]
    width = max(len("shape"), *(len(text) for text in shapes))
    lines = [
        f"{'layer':>5} {'kind':<5} {'shape':<{width}} {'similarity':>10} {'reuse':>7} "
        f"{'cycles':>10} {'baseline':>10} {'out-of-range':>12} {'saturated':>9}",
    ]
    for n, (layer, shape) in enumerate(zip(report["layers"], shapes)):
        similarity = layer["input_similarity"]
        lines.append(
            f"{n:>5} {layer['kind']:<5} {shape:<{width}} "
            f"{(f'{similarity:.1%}' if similarity is not None else '-'):>10} "
            f"{layer['computation_reuse']:>7.1%} {layer['cycles']:>10} "
            f"{layer['baseline_cycles']:>10} {layer['out_of_range_inputs']:>12} "
            f"{layer['saturated_outputs']:>9}")
    for n, layer in enumerate(report["layers"]):
        if layer.get("x_similarity") is not None:
            lines.append(f"{n:>5} {layer['kind']:<5} similarity of x_t "
                         f"{layer['x_similarity']:.1%}, of h_t-1 {layer['h_similarity']:.1%}")
    lines += [
        "",
        f"frames                {summary['frames']}",
        f"input similarity      {_percent(summary['input_similarity'])}",
        f"computation reuse     {summary['computation_reuse']:.1%}",
        f"cycles with reuse     {summary['cycles']}",
        f"cycles without reuse  {summary['baseline_cycles']}",
        f"speedup               {summary['speedup']:.2f}x"
        + (f" (ideal {summary['ideal_speedup']:.2f}x, efficiency "
           f"{summary['reuse_efficiency']:.1%})" if summary["ideal_speedup"] else ""),
        f"max |error| vs float  {summary['max_abs_error_vs_float']:.4f}",
    ]
    if "accuracy" in summary:
        lines.append(f"frame accuracy        {summary['accuracy']:.1%} "
                     f"(float network {summary['float_accuracy']:.1%})")
    if "mean_abs_error" in summary:
        lines.append(f"mean |error| vs labels {summary['mean_abs_error']:.4f} "
                     f"(float network {summary['float_mean_abs_error']:.4f})")
    if "simulation" in summary:
        sim = summary["simulation"]
        lines.append(f"simulation            {sim['cycles']} cycles in {sim['seconds']:.1f} s "
                     f"({sim['cycles_per_second']:.0f} cycles/s, {sim['backend']}; build "
                     f"{sim['build_seconds']:.1f} s)")
    if "board" in summary:
        board, link = summary["board"], summary["board"]["link"]
        lines.append(f"board                 {board['port']} at {board['baudrate']} baud, "
                     f"{board['seconds']:.1f} s; link: {link['requests']} requests, "
                     f"{link['retries']} retries, {link['naks']} NAKs, "
                     f"{link['crc_errors']} CRC errors, {link['timeouts']} timeouts")
    return "\n".join(lines)


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"
