// NumPy .npy files for float32 tensors, so features can be inspected with numpy.load.
//
//   write_npy("features.npy", fbank.compute(wave));   // np.load(...) -> float32 (T, F)
//   at::Tensor x = read_npy("features.npy");           // float32, the stored shape
//
// Format 1.0 (2.0 and 3.0 are read too), little-endian '<f4', C order. The writer accepts
// any floating tensor (converted to contiguous CPU float32); the reader accepts only '<f4'
// in C order, which is all patchbay writes and all its tests need.
// Errors: write_npy throws Error "io.write_failed" naming the file; read_npy throws
// DataError "data.missing" / "data.npy" naming the file and what is wrong with it.
#pragma once
#include <ATen/core/Tensor.h>

#include <filesystem>

#include "patchbay/export.hpp"

namespace patchbay {

PATCHBAY_API void write_npy(const std::filesystem::path& file, const at::Tensor& tensor);
PATCHBAY_API at::Tensor read_npy(const std::filesystem::path& file);

}  // namespace patchbay
