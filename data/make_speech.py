"""Build the speech demo data for reuse-accel: a real speech sequence and a small trained MLP.

What it does
------------
1. Synthesizes spoken-word sentences with espeak-ng (10 Speech-Commands words plus silence)
   in many voices (accent x voice variant, several speeds and pitches), resamples them to
   16 kHz and labels every 10 ms frame with the word being spoken. Word boundaries come from
   energy-based endpointing of the clean synthetic waveform (pauses between words are
   inserted with SSML <break/>; frames outside the detected words are class "sil").
2. Computes Kaldi ``compute-fbank-feats``-style log mel filterbank features (see FBANK
   below), applies per-utterance cepstral mean normalisation (CMN) and splices +-5 frames
   of context (edge frames repeated) into 440-dim vectors (frame -5..+5, 40 bins each).
3. Trains an MLP 440-128-128-C (ReLU, softmax cross-entropy, Adam, mini-batches) in
   NumPy on all voices but one, and reports frame accuracy on train and on the held-out
   voice. The global input standardisation used for training is folded exactly into the
   first layer, so the shipped network takes the CMN+spliced features directly.
4. Synthesizes the demo sentence with the held-out voice as one utterance and stores its
   features and labels.
5. Reports the input similarity a computation-reuse accelerator would see: per layer, the
   inputs are quantized into 16 uniform levels between their min and max over the demo
   sequence, and the share of inputs whose level equals the previous frame's is printed.

Outputs (in the directory of this script)
-----------------------------------------
speech_mlp.npz     float32 w0 (128,440) b0 (128,) w1 (128,128) b1 (128,) w2 (C,128) b2 (C,)
                   (PyTorch Linear layout: weight is (out, in); y = x @ w.T + b)
speech_frames.npy  float32 (T, 440) demo-sequence features
speech_labels.npy  int64 (T,) demo-sequence frame labels (indices into "classes")
speech.json        metadata: classes, voices, sentence, settings, accuracies, similarity

Run
---
    python data/make_speech.py

Needs NumPy and SciPy. espeak-ng (Debian package ``espeak-ng``) is needed only to
regenerate the data; the shipped files are self-contained. The script is seeded and
deterministic (espeak-ng output is deterministic for a given espeak-ng version).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from mlp import fold_input_norm, forward, train_mlp
from scipy.signal import resample_poly

OUT_DIR = Path(__file__).resolve().parent
SEED = 1234

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
CLASSES = ["sil", *WORDS]
SIL = 0
SYMBOLS = ".ynudlrofsg"  # one character per class, for printing

# A "voice" is an espeak-ng accent plus a voice variant. Variants with echo (m2, f2..f5, ...)
# are avoided: the echo fills the pauses between words and breaks energy endpointing.
TRAIN_ACCENTS = [
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
]
TRAIN_VARIANTS = ["m1", "m3", "m6", "f1", "linda", "Annie"]
TEST_VOICE = "en-gb-x-rp+m4"  # accent and variant both unseen in training
SPEEDS = [180, 220, 260, 300]  # words per minute
PITCHES = [35, 50, 65]  # espeak-ng pitch adjustment 0..99
SENTENCES_PER_VOICE = 6  # training sentences per voice
TEST_SENTENCES = 24  # held-out-voice sentences for the test accuracy
WORDS_PER_SENTENCE = (6, 12)  # inclusive range for random sentences
PAUSE_MS = (80, 300)  # SSML break between words, random sentences
EDGE_SIL_MS = (50, 300)  # silence kept before the first / after the last word

# All ten words, fast and with short pauses so that T stays within 150..250 frames.
DEMO_WORDS = ["go", "left", "stop", "up", "down", "yes", "no", "right", "on", "off"]
DEMO_SPEED, DEMO_PITCH, DEMO_PAUSE_MS, DEMO_EDGE_MS = 290, 50, 80, 50

SAMPLE_RATE = 16000
ESPEAK_RATE = 22050
# Kaldi compute-fbank-feats settings (all other options at their Kaldi defaults).
FBANK = {
    "sample_frequency": SAMPLE_RATE,
    "frame_length_ms": 25.0,
    "frame_shift_ms": 10.0,
    "dither": 0.0,
    "remove_dc_offset": True,
    "preemphasis_coefficient": 0.97,
    "window_type": "povey",
    "round_to_power_of_two": True,
    "fft_size": 512,
    "num_mel_bins": 40,
    "low_freq": 20.0,
    "high_freq": 7800.0,
    "use_energy": False,
    "use_log_fbank": True,
    "use_power": True,
    "snip_edges": True,
    "log_floor": "float32 epsilon",
    "waveform_scale": "int16 sample values",
}
CONTEXT = 5  # splice +-5 frames -> 11 * 40 = 440 dims
FRAME_LEN = 400  # 25 ms at 16 kHz
FRAME_SHIFT = 160  # 10 ms at 16 kHz
NFFT = 512
NUM_MEL = 40

# Energy endpointing on the clean waveform (25 ms frames, same framing as the features).
ENDPOINT_REL_DB = 40.0  # a frame is "active" if within 40 dB of the utterance's loudest frame
MERGE_GAP = 4  # inactive runs of <= 4 frames inside a word (stop closures) are merged

# Recording noise floor: espeak-ng writes exact digital zeros in pauses, which with dither 0
# would give log(epsilon) frames no microphone produces. A seeded white-noise floor, set
# relative to each utterance's speech level, is added after labelling.
NOISE_SNR_DB = 40.0

HIDDEN = 128
EPOCHS = 12
BATCH = 256
LR = 1e-3
SIM_LEVELS = 16
CALIBRATION_FRAMES = 96  # shipped training-voice frames for calibrating centroid tables


# ----------------------------------------------------------------------------- synthesis


def espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split("Data at:")[0].strip()


def synthesize(
    words: list[str], voice: str, speed: int, pitch: int, pauses_ms: list[int]
) -> np.ndarray:
    """Speak ``words`` as one utterance (SSML breaks between them); return 16 kHz int16-scale
    float64 samples."""
    parts = [words[0]]
    for w, p in zip(words[1:], pauses_ms, strict=True):
        parts.append(f'<break time="{p}ms"/> {w}')
    ssml = "<speak>" + " ".join(parts) + "</speak>"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-m",
                "-v",
                voice,
                "-s",
                str(speed),
                "-p",
                str(pitch),
                "-w",
                str(path),
                ssml,
            ],
            check=True,
            capture_output=True,
        )
        with wave.open(str(path)) as f:
            assert f.getnchannels() == 1 and f.getsampwidth() == 2
            rate = f.getframerate()
            x = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float64)
    assert rate == ESPEAK_RATE, rate
    return resample_poly(x, 320, 441)  # 22050 Hz -> 16000 Hz


def num_frames(n_samples: int) -> int:
    return 1 + (n_samples - FRAME_LEN) // FRAME_SHIFT if n_samples >= FRAME_LEN else 0


def frame_signal(x: np.ndarray) -> np.ndarray:
    idx = np.arange(num_frames(len(x)))[:, None] * FRAME_SHIFT + np.arange(FRAME_LEN)
    return x[idx]


def active_frames(x: np.ndarray) -> np.ndarray:
    energy = 10 * np.log10(np.sum(frame_signal(x) ** 2, axis=1) + 1e-10)
    return energy > energy.max() - ENDPOINT_REL_DB


def word_segments(active: np.ndarray) -> list[tuple[int, int]]:
    """Runs of active frames, with short inactive gaps (stop closures) merged; [start, end)."""
    idx = np.flatnonzero(active)
    if len(idx) == 0:
        return []
    segs = [[idx[0], idx[0] + 1]]
    for i in idx[1:]:
        if i - segs[-1][1] <= MERGE_GAP:
            segs[-1][1] = i + 1
        else:
            segs.append([i, i + 1])
    return [(a, b) for a, b in segs]


def make_utterance(
    words: list[str],
    voice: str,
    speed: int,
    pitch: int,
    pauses_ms: list[int],
    edge_ms: tuple[int, int],
    noise_seed: int,
):
    """Synthesize, trim/pad edge silence, label frames, add the noise floor.

    Returns (waveform, labels) or None if endpointing did not find one segment per word."""
    x = synthesize(words, voice, speed, pitch, pauses_ms)
    nz = np.flatnonzero(np.abs(x) > 1.0)  # trim espeak's leading/trailing silence
    x = x[nz[0] : nz[-1] + 1]
    lead, trail = (int(ms * SAMPLE_RATE / 1000) for ms in edge_ms)
    x = np.concatenate([np.zeros(lead), x, np.zeros(trail)])
    segs = word_segments(active_frames(x))
    if len(segs) != len(words):
        return None
    labels = np.full(num_frames(len(x)), SIL, dtype=np.int64)
    for (a, b), w in zip(segs, words, strict=True):
        labels[a:b] = CLASSES.index(w)
    speech_rms = np.sqrt(np.mean(frame_signal(x)[labels != SIL] ** 2))
    noise = np.random.default_rng(noise_seed).standard_normal(len(x))
    x = x + noise * speech_rms * 10 ** (-NOISE_SNR_DB / 20)
    return x, labels


# ----------------------------------------------------------------------------- features


def mel_scale(f):
    return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)


def mel_banks() -> np.ndarray:
    """Kaldi MelBanks: triangles in the mel domain over FFT bins 0..NFFT/2-1, (40, 257)."""
    n_fft_bins = NFFT // 2
    freqs = SAMPLE_RATE / NFFT * np.arange(n_fft_bins)
    mel = mel_scale(freqs)
    lo, hi = mel_scale(FBANK["low_freq"]), mel_scale(FBANK["high_freq"])
    delta = (hi - lo) / (NUM_MEL + 1)
    banks = np.zeros((NUM_MEL, n_fft_bins + 1))
    for b in range(NUM_MEL):
        left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        up = (mel - left) / (center - left)
        down = (right - mel) / (right - center)
        w = np.where(mel <= center, up, down)
        banks[b, :n_fft_bins] = np.where((mel > left) & (mel < right), w, 0.0)
    return banks


MEL_BANKS = mel_banks()
POVEY = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME_LEN) / (FRAME_LEN - 1))) ** 0.85


def fbank(x: np.ndarray) -> np.ndarray:
    """Kaldi compute-fbank-feats (dither 0, snip_edges) on int16-scale samples -> (T, 40)."""
    frames = frame_signal(x).astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)  # remove DC offset
    pre = frames.copy()
    pre[:, 1:] -= FBANK["preemphasis_coefficient"] * frames[:, :-1]
    pre[:, 0] -= FBANK["preemphasis_coefficient"] * frames[:, 0]
    spec = np.fft.rfft(pre * POVEY, n=NFFT)
    power = spec.real**2 + spec.imag**2
    energies = power @ MEL_BANKS.T
    return np.log(np.maximum(energies, np.finfo(np.float32).eps))


def splice(feats: np.ndarray) -> np.ndarray:
    t = len(feats)
    idx = np.clip(np.arange(t)[:, None] + np.arange(-CONTEXT, CONTEXT + 1), 0, t - 1)
    return feats[idx].reshape(t, -1)


def features(x: np.ndarray) -> np.ndarray:
    f = fbank(x)
    f -= f.mean(axis=0)  # per-utterance CMN
    return splice(f).astype(np.float32)


# ----------------------------------------------------------------------------- data sets


def random_jobs(rng: np.random.Generator, voice: str, n: int, seed_base: int) -> list:
    jobs = []
    for i in range(n):
        k = int(rng.integers(WORDS_PER_SENTENCE[0], WORDS_PER_SENTENCE[1] + 1))
        words = [WORDS[j] for j in rng.integers(0, len(WORDS), size=k)]
        pauses = [int(p) for p in rng.integers(PAUSE_MS[0], PAUSE_MS[1] + 1, size=k - 1)]
        edge = tuple(int(e) for e in rng.integers(EDGE_SIL_MS[0], EDGE_SIL_MS[1] + 1, size=2))
        speed = int(rng.choice(SPEEDS))
        pitch = int(rng.choice(PITCHES))
        jobs.append((words, voice, speed, pitch, pauses, edge, seed_base + i))
    return jobs


def build_set(jobs: list) -> tuple[np.ndarray, np.ndarray, int]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda j: make_utterance(*j), jobs))
    xs, ys, dropped = [], [], 0
    for r in results:
        if r is None:
            dropped += 1
            continue
        xs.append(features(r[0]))
        ys.append(r[1])
    return np.concatenate(xs), np.concatenate(ys), dropped


# ----------------------------------------------------------------------------- MLP


def accuracy(params: list, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(forward(params, x)[-1], axis=1) == y))


def cross_entropy(outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """The batch's summed softmax cross-entropy and the gradient of its mean."""
    logits = outputs - outputs.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    rows = np.arange(len(targets))
    loss = -np.sum(np.log(prob[rows, targets] + 1e-12))
    grad = prob
    grad[rows, targets] -= 1.0
    grad /= len(targets)
    return loss, grad


def train_speech_mlp(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> list:
    return train_mlp(x, y, [x.shape[1], HIDDEN, HIDDEN, len(CLASSES)], rng,
                     loss=cross_entropy, epochs=EPOCHS, batch=BATCH, lr=LR)


def similarity(params: list, x: np.ndarray) -> list[float]:
    """Per layer: share of inputs whose 16-level quantized value equals the previous frame's."""
    acts = forward(params, x)[:-1]  # inputs of layers 0, 1, 2
    out = []
    for a in acts:
        lo, hi = float(a.min()), float(a.max())
        q = np.clip(np.floor((a - lo) / (hi - lo) * SIM_LEVELS), 0, SIM_LEVELS - 1)
        out.append(float(np.mean(q[1:] == q[:-1])))
    return out


def sentence_jobs(rng: np.random.Generator) -> tuple[list[str], list, list]:
    """The training voices, their sentences' synthesis jobs and the held-out voice's, drawn
    from ``rng`` in that order (``make_speech_lstm.py`` draws the same sentences)."""
    train_voices = [f"{a}+{v}" for a in TRAIN_ACCENTS for v in TRAIN_VARIANTS]
    jobs = []
    for k, voice in enumerate(train_voices):
        jobs += random_jobs(rng, voice, SENTENCES_PER_VOICE, 100_000 + 1000 * k)
    return train_voices, jobs, random_jobs(rng, TEST_VOICE, TEST_SENTENCES, 900_000)


# ----------------------------------------------------------------------------- main


def main() -> None:
    t0 = time.time()
    rng = np.random.default_rng(SEED)
    train_voices, jobs, test_jobs = sentence_jobs(rng)

    print(f"synthesizing {len(jobs)} training sentences ({len(train_voices)} voices) ...")
    x_tr, y_tr, drop_tr = build_set(jobs)
    print(f"synthesizing {len(test_jobs)} test sentences ({TEST_VOICE}) ...")
    x_te, y_te, drop_te = build_set(test_jobs)
    print(
        f"train frames {len(x_tr)} (dropped {drop_tr} sentences), "
        f"test frames {len(x_te)} (dropped {drop_te})"
    )

    demo = make_utterance(
        DEMO_WORDS,
        TEST_VOICE,
        DEMO_SPEED,
        DEMO_PITCH,
        [DEMO_PAUSE_MS] * (len(DEMO_WORDS) - 1),
        (DEMO_EDGE_MS, DEMO_EDGE_MS),
        noise_seed=999_999,
    )
    if demo is None:
        raise RuntimeError("endpointing did not find one segment per demo word")
    x_demo, y_demo = features(demo[0]), demo[1]
    assert 150 <= len(x_demo) <= 250, len(x_demo)

    mean = x_tr.mean(axis=0, dtype=np.float64)
    std = x_tr.std(axis=0, dtype=np.float64) + 1e-5
    x_tr_n = ((x_tr - mean) / std).astype(np.float32)
    print("training MLP ...")
    params = fold_input_norm(train_speech_mlp(x_tr_n, y_tr, rng), mean, std)

    acc = {
        "train": accuracy(params, x_tr, y_tr),
        "test": accuracy(params, x_te, y_te),
        "demo": accuracy(params, x_demo, y_demo),
    }
    sim = similarity(params, x_demo)
    print("frame accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    print("similarity (16 levels) per layer input: " + ", ".join(f"{s:.4f}" for s in sim))
    demo_pred = np.argmax(forward(params, x_demo)[-1], axis=1)
    print("demo labels: " + "".join(SYMBOLS[i] for i in y_demo))
    print("demo pred  : " + "".join(SYMBOLS[i] for i in demo_pred))

    (w0, b0), (w1, b1), (w2, b2) = params
    np.savez(OUT_DIR / "speech_mlp.npz", w0=w0, b0=b0, w1=w1, b1=b1, w2=w2, b2=b2)
    np.save(OUT_DIR / "speech_frames.npy", x_demo.astype(np.float32))
    np.save(OUT_DIR / "speech_labels.npy", y_demo.astype(np.int64))
    # Calibration frames for the centroid tables: training voices only, never the demo voice.
    calibration = x_tr[np.random.default_rng(SEED + 1).choice(len(x_tr), CALIBRATION_FRAMES,
                                                              replace=False)]
    np.save(OUT_DIR / "speech_calibration.npy", calibration.astype(np.float32))
    meta = {
        "description": "espeak-ng spoken-word frame classification; demo sequence by the "
        "held-out voice; made by data/make_speech.py",
        "classes": CLASSES,
        "train_voices": train_voices,
        "test_voice": TEST_VOICE,
        "train_speeds_wpm": SPEEDS,
        "train_pitches": PITCHES,
        "sentence": " ".join(DEMO_WORDS),
        "demo_speed_wpm": DEMO_SPEED,
        "demo_pitch": DEMO_PITCH,
        "demo_pause_ms": DEMO_PAUSE_MS,
        "T": len(x_demo),
        "sample_rate": SAMPLE_RATE,
        "features": {
            **FBANK,
            "normalisation": "per-utterance cepstral mean normalisation",
            "splice": f"+-{CONTEXT} frames, edge frames repeated, ordered frame "
            f"-{CONTEXT}..+{CONTEXT}, {NUM_MEL} bins each",
            "dim": (2 * CONTEXT + 1) * NUM_MEL,
            "noise_floor_snr_db": NOISE_SNR_DB,
        },
        "labels": f"energy endpointing on the clean waveform: frames within "
        f"{ENDPOINT_REL_DB} dB of the loudest frame, gaps <= {MERGE_GAP} frames "
        f"merged, one segment per word; everything else 'sil'",
        "model": {
            "layers": [(2 * CONTEXT + 1) * NUM_MEL, HIDDEN, HIDDEN, len(CLASSES)],
            "activation": "relu (hidden), identity on output (softmax/argmax)",
            "layout": "w (out, in), y = x @ w.T + b",
            "input_normalisation": "global mean/std of training features folded into w0/b0",
            "optimizer": f"adam lr {LR}, batch {BATCH}, {EPOCHS} epochs, seed {SEED}",
        },
        "train_frames": len(x_tr),
        "test_frames": len(x_te),
        "frame_accuracy": {"train": round(acc["train"], 4), "test": round(acc["test"], 4)},
        "demo_frame_accuracy_float": round(acc["demo"], 4),
        "similarity_16_levels": [round(s, 4) for s in sim],
        "similarity_definition": "per layer input, uniform 16 levels between the min and max "
        "over the demo sequence; share equal to the previous frame's "
        "level over frames 2..T",
        "espeak_ng_version": espeak_version(),
    }
    (OUT_DIR / "speech.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {OUT_DIR} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
