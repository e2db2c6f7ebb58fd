#!/usr/bin/python3
"""Writes the golden clips and reference fbanks that tests/unit/test_fbank.cpp checks.

Run with Debian's Python (apt-get install python3-torchaudio); only needed to regenerate
tests/golden/fbank/, never by the build or the tests:

    /usr/bin/python3 tests/golden/make_fbank_golden.py

Each clip is synthesised deterministically (no downloads, no speech synthesiser, so the
bytes do not depend on what is installed), written as 16-bit mono WAV at 16 kHz, then
loaded back and turned into features exactly as AST's data loader does: torchaudio.load,
remove the waveform's mean, torchaudio.compliance.kaldi.fbank with AST's arguments. The
features are saved beside the clip as float32 [T, 128] .npy. Clips are short (0.05-0.4 s) so
the committed files stay small.
"""
import math
import pathlib
import wave

import numpy as np
import torch
import torchaudio

RATE = 16000
OUT = pathlib.Path(__file__).resolve().parent / "fbank"


def resonator(x, freq, bandwidth):
    """Two-pole resonance at `freq` Hz: a formant of a vowel-like sound."""
    r = math.exp(-math.pi * bandwidth / RATE)
    a1, a2 = -2.0 * r * math.cos(2.0 * math.pi * freq / RATE), r * r
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    for i, v in enumerate(x):
        y0 = v - a1 * y1 - a2 * y2
        y[i], y2, y1 = y0, y1, y0
    return y


def speech_like(seconds):
    """A glottal pulse train with a gliding pitch through two vowels' formants."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 110.0 + 70.0 * t / seconds  # 110 -> 180 Hz
    phase = np.cumsum(f0) / RATE
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per period
    half = n // 2
    out = np.zeros(n)
    for start, stop, formants in ((0, half, ((730, 90), (1090, 110), (2440, 170))),   # "a"
                                  (half, n, ((270, 60), (2290, 100), (3010, 200)))):  # "i"
        seg = pulses[start:stop]
        out[start:stop] = sum(resonator(seg, f, b) for f, b in formants)
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.03)  # 30 ms fades
    out *= envelope
    return 0.5 * out / np.max(np.abs(out))


def tones(seconds):
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.5 * np.sin(2 * np.pi * 1000.0 * t) + 0.1 * np.sin(2 * np.pi * 3000.0 * t + 0.3)


def noise(samples):
    rng = np.random.default_rng(1234)
    return np.clip(0.25 * rng.standard_normal(samples), -1.0, 1.0)


def chirp(seconds):
    t = np.arange(int(seconds * RATE)) / RATE
    f_start, f_end = 300.0, 6000.0
    k = (f_end - f_start) / seconds
    return 0.4 * np.sin(2 * np.pi * (f_start * t + 0.5 * k * t * t))


CLIPS = {
    "speech": speech_like(0.4),          # 38 frames
    "tones": tones(0.2),                 # 18 frames
    "noise": noise(4321),                # 25 frames: a length that is no multiple of the hop
    "silence": np.zeros(800),            # 3 frames, every value log(FLT_EPSILON)
    "short_chirp": chirp(0.25),          # 23 frames, far below the 128-frame target
}


def write_wav(path, samples):
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def ast_fbank(path):
    """AST's dataloader (_wav2fbank without mixup), up to padding and normalisation."""
    waveform, sr = torchaudio.load(str(path))
    waveform = waveform - waveform.mean()
    return torchaudio.compliance.kaldi.fbank(
        waveform, htk_compat=True, sample_frequency=sr, use_energy=False,
        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, samples in CLIPS.items():
        wav = OUT / f"{name}.wav"
        write_wav(wav, samples)
        feats = ast_fbank(wav).numpy().astype("<f4")
        np.save(OUT / f"{name}.npy", np.ascontiguousarray(feats))
        print(f"{wav.name}: {len(samples)} samples -> fbank {feats.shape}, "
              f"range [{feats.min():.3f}, {feats.max():.3f}]")


if __name__ == "__main__":
    main()
