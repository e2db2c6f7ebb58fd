#include "acoustics.hpp"

#include <cmath>
#include <stdexcept>

#include <ATen/ATen.h>

namespace patchbay::acoustics {
namespace {

struct Biquad {
  double b0, b1, b2, a1, a2;  // normalised by a0

  void run(std::vector<float>& x) const {
    double x1 = 0, x2 = 0, y1 = 0, y2 = 0;  // direct form I, state in double
    for (float& v : x) {
      const double y = b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
      x2 = x1;
      x1 = v;
      y2 = y1;
      y1 = y;
      v = static_cast<float>(y);
    }
  }
};

// The cookbook's LPF and HPF with Q = 1/sqrt(2) (Butterworth).
Biquad butterworth(double rate, double hz, bool high) {
  const double w = 2.0 * M_PI * hz / rate;
  const double alpha = std::sin(w) / (2.0 * M_SQRT1_2);
  const double c = std::cos(w);
  const double a0 = 1.0 + alpha;
  const double b1 = high ? -(1.0 + c) : 1.0 - c;
  const double b0 = high ? (1.0 + c) / 2.0 : (1.0 - c) / 2.0;
  return {b0 / a0, b1 / a0, b0 / a0, -2.0 * c / a0, (1.0 - alpha) / a0};
}

}  // namespace

void band_limit(std::vector<float>& x, double rate, double high_pass_hz, double low_pass_hz) {
  if (!(high_pass_hz > 0 && high_pass_hz < low_pass_hz && low_pass_hz < rate / 2)) {
    throw std::invalid_argument("band_limit: need 0 < high_pass_hz < low_pass_hz < rate / 2");
  }
  butterworth(rate, high_pass_hz, true).run(x);
  butterworth(rate, low_pass_hz, false).run(x);
}

std::vector<float> room_response(datasets::Rng& rng, double rate, double rt60_s, double predelay_s, double drr_db) {
  const auto delay = static_cast<size_t>(std::lround(predelay_s * rate));
  const auto tail = static_cast<size_t>(std::lround(rt60_s * rate));
  std::vector<float> h(delay + tail, 0.0f);
  h[0] = 1.0f;
  // Energy decays as exp(-2 k n): -60 dB after rt60 seconds gives k = 3 ln 10 / (rt60 rate).
  const double k = 3.0 * std::log(10.0) / (rt60_s * rate);
  double energy = 0;
  std::vector<double> g(tail);
  for (size_t n = 0; n < tail; ++n) {
    g[n] = rng.gaussian() * std::exp(-k * static_cast<double>(n));
    energy += g[n] * g[n];
  }
  const double scale = energy > 0 ? std::sqrt(std::pow(10.0, -drr_db / 10.0) / energy) : 0.0;
  for (size_t n = 0; n < tail; ++n) {
    if (delay + n == 0) continue;  // no pre-delay: the direct path stays the first sample
    h[delay + n] += static_cast<float>(g[n] * scale);
  }
  return h;
}

std::vector<float> convolve(const std::vector<float>& x, const std::vector<float>& h) {
  if (x.empty() || h.empty()) return {};
  const auto out = static_cast<int64_t>(x.size() + h.size() - 1);
  int64_t n = 1;
  while (n < out) n *= 2;
  auto as_tensor = [](const std::vector<float>& v) {
    return at::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())}, at::kFloat).to(at::kDouble);
  };
  const at::Tensor y = at::fft_irfft(at::fft_rfft(as_tensor(x), n) * at::fft_rfft(as_tensor(h), n), n)
                           .slice(0, 0, out).to(at::kFloat).contiguous();
  const float* p = y.data_ptr<float>();
  return std::vector<float>(p, p + out);
}

}  // namespace patchbay::acoustics
