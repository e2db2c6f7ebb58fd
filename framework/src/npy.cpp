// NumPy .npy reading and writing (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
#include <cstring>
#include <fstream>
#include <regex>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/npy.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the .npy code writes '<f4' straight from memory; add byte swapping for this host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

[[noreturn]] void malformed(const fs::path& file, const std::string& what) {
  throw DataError("data.npy", fmt::format("'{}' is not a float32 .npy file patchbay can read: {}; "
                                          "write it with numpy.save(file, x.astype('<f4'))",
                                          file.string(), what));
}

}  // namespace

void write_npy(const fs::path& file, const at::Tensor& tensor) {
  if (!tensor.defined() || !at::isFloatingType(tensor.scalar_type())) {
    throw Error("io.write_failed",
                fmt::format("cannot write '{}': only floating-point tensors are written as .npy",
                            file.string()));
  }
  const at::Tensor data = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
  std::string shape = "(";
  for (int64_t d = 0; d < data.dim(); ++d) shape += fmt::format("{}, ", data.size(d));
  if (data.dim() == 1) {
    shape.erase(shape.size() - 1);  // "(n,)"
  } else if (data.dim() > 1) {
    shape.erase(shape.size() - 2);  // "(a, b)"
  }
  shape += ")";
  std::string header =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", shape);
  // Pad with spaces and a final newline so the data starts on a 64-byte boundary, as numpy
  // itself writes (magic 6 + version 2 + length 2 = 10 bytes before the header).
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';

  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char version[2] = {1, 0};
  out.write(kMagic, kMagicLen);
  out.write(version, 2);
  out.write(reinterpret_cast<const char*>(&len), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(data.data_ptr()),
            static_cast<std::streamsize>(data.numel() * sizeof(float)));
  out.close();
  if (!out) {
    throw Error("io.write_failed", fmt::format("cannot write '{}': {}; check that the folder "
                                               "exists and is writable",
                                               file.string(), std::strerror(errno)));
  }
}

at::Tensor read_npy(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw DataError("data.missing", fmt::format("cannot open '{}': {}", file.string(),
                                                std::strerror(errno)));
  }
  char magic[kMagicLen];
  unsigned char version[2];
  if (!in.read(magic, kMagicLen) || std::memcmp(magic, kMagic, kMagicLen) != 0) {
    malformed(file, "no .npy magic string");
  }
  if (!in.read(reinterpret_cast<char*>(version), 2)) malformed(file, "truncated header");
  uint32_t header_len = 0;
  if (version[0] == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) malformed(file, "truncated header");
    header_len = b[0] | (b[1] << 8);
  } else if (version[0] == 2 || version[0] == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) malformed(file, "truncated header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    malformed(file, fmt::format("format version {}.{} is unknown", version[0], version[1]));
  }
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) malformed(file, "truncated header");

  static const std::regex descr_re(R"('descr'\s*:\s*'([^']*)')");
  static const std::regex order_re(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex shape_re(R"('shape'\s*:\s*\(([^)]*)\))");
  std::smatch m;
  if (!std::regex_search(header, m, descr_re)) malformed(file, "no 'descr' in the header");
  if (m[1] != "<f4") malformed(file, fmt::format("dtype '{}' instead of '<f4'", m[1].str()));
  if (!std::regex_search(header, m, order_re)) malformed(file, "no 'fortran_order' in the header");
  if (m[1] != "False") malformed(file, "Fortran order");
  if (!std::regex_search(header, m, shape_re)) malformed(file, "no 'shape' in the header");
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  static const std::regex int_re(R"(\d+)");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), int_re); it != std::sregex_iterator();
       ++it) {
    shape.push_back(std::stoll(it->str()));
  }
  at::Tensor out = at::empty(shape, at::kFloat);
  const auto bytes = static_cast<std::streamsize>(out.numel() * sizeof(float));
  if (bytes > 0 && !in.read(static_cast<char*>(out.data_ptr()), bytes)) {
    malformed(file, fmt::format("the data is shorter than the {} values its shape declares",
                                out.numel()));
  }
  return out;
}

}  // namespace patchbay
