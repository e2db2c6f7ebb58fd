#!/usr/bin/python3
"""AST's front end in Python: torchaudio.load, waveform - mean, torchaudio.compliance.kaldi.fbank
with AST's arguments, zero-pad / crop to 128 frames; timed over the *.wav files of a folder.

Usage: fbank_reference.py DIR THREADS REPEATS   -> prints "reference_clips_per_s <median>"
THREADS 1 runs the loop in this process (torch.set_num_threads(1)); THREADS > 1 splits the
files over a multiprocessing pool of that many workers, one torch thread each (what AST's
DataLoader workers do; the pool is started before timing). Debian's python3-torchaudio; used
by bench/run_fbank.sh only, never by patchbay itself.
"""
import glob
import multiprocessing
import os
import statistics
import sys
import time

import torch
import torchaudio

TARGET_FRAMES = 128


def features(path):
    waveform, sr = torchaudio.load(path)
    waveform = waveform - waveform.mean()
    fbank = torchaudio.compliance.kaldi.fbank(
        waveform, htk_compat=True, sample_frequency=sr, use_energy=False, window_type='hanning',
        num_mel_bins=128, dither=0.0, frame_shift=10)
    p = TARGET_FRAMES - fbank.shape[0]
    if p > 0:
        fbank = torch.nn.ZeroPad2d((0, 0, 0, p))(fbank)
    elif p < 0:
        fbank = fbank[0:TARGET_FRAMES, :]
    return fbank


def run_chunk(paths):
    return torch.stack([features(p) for p in paths])


def init_worker():
    torch.set_num_threads(1)


def main():
    folder, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    paths = sorted(glob.glob(os.path.join(folder, '*.wav')))
    if not paths:
        sys.exit(f'no .wav files in {folder}')
    torch.set_num_threads(1)
    pool = None
    if threads > 1:
        pool = multiprocessing.get_context('fork').Pool(threads, initializer=init_worker)
        chunks = [paths[i::threads] for i in range(threads)]
        pool.map(run_chunk, chunks)  # start and warm the workers
        work = lambda: pool.map(run_chunk, chunks)
    else:
        run_chunk(paths[:8])  # warm-up
        work = lambda: run_chunk(paths)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    if pool is not None:
        pool.close()
        pool.join()
    print(f'reference_clips_per_s {len(paths) / statistics.median(times):.1f}')


if __name__ == '__main__':
    main()
