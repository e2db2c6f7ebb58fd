// Room and channel effects of the keywords generator (keywords.hpp, docs/datasets.md): the
// parts of a real recording that a synthesised word lacks. Pure functions on mono float
// samples; the random choices are the caller's (its per-clip streams), so the same draws
// give the same samples.
#pragma once
#include <vector>

#include "patchbay_datasets/generator.hpp"

namespace patchbay::acoustics {

// A band-limited channel (a phone line, a laptop microphone): a 2nd-order Butterworth
// high-pass at `high_pass_hz`, then a 2nd-order Butterworth low-pass at `low_pass_hz`
// (biquads by R. Bristow-Johnson's cookbook formulas), in place. Needs
// 0 < high_pass_hz < low_pass_hz < rate / 2.
void band_limit(std::vector<float>& x, double rate, double high_pass_hz, double low_pass_hz);

// A synthetic room's impulse response: a unit direct path, then after `predelay_s` a tail of
// Gaussian noise decaying by 60 dB in `rt60_s` (the reverberation time), scaled so that the
// direct-to-reverberant energy ratio is `drr_db`. Length: predelay + rt60.
std::vector<float> room_response(datasets::Rng& rng, double rate, double rt60_s, double predelay_s, double drr_db);

// The full linear convolution of x and h (x.size() + h.size() - 1 samples), through the FFT.
std::vector<float> convolve(const std::vector<float>& x, const std::vector<float>& h);

}  // namespace patchbay::acoustics
