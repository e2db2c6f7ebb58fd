// Reads the tensors of a checkpoint written by Python's torch.save, as the peers publish them
// (AST's audioset_10_10_0.4593.pth, AuM's, SSAST's): PyTorch >= 1.6's zip format holding a
// state dict -- a dict or collections.OrderedDict of name -> tensor (or nn.Parameter) --
// either at the top or nested in a dict under "state_dict", "model", "model_state_dict",
// "module" or "net" (training checkpoints: {"model": ..., "optimizer": ..., "epoch": ...}),
// with nn.DataParallel's "module." prefix removed when every name carries it.
//
//   TorchCheckpoint ckpt = read_torch_checkpoint("audioset_10_10_0.4593.pth");
//   ckpt.tensors.at("v.pos_embed");   // [1, 1214, 768] float32, CPU, contiguous
//
// The zip container and its storage records are read with LibTorch's own reader
// (caffe2::serialize::PyTorchStreamReader). The pickle inside is read by a small
// state-dict-only unpickler here, because LibTorch 1.13's (Debian 12's) torch::pickle_load
// turns an OrderedDict into None and has no SETITEM opcode, so it fails on every published
// state dict (LibTorch 2.x fixed the first). The unpickler executes nothing: a class other
// than those a state dict uses (OrderedDict, the tensor and parameter rebuild functions,
// the typed storages) becomes an opaque value, which is an error only where a tensor is
// needed. Entries of the state dict that are no tensors are skipped. Tensors keep their
// dtype (float32, float16, bfloat16, float64, integer, bool).
//
// Errors: Error "weights.not_found" (no such file), "weights.unreadable" (not a zip
// checkpoint -- the message says how to re-save one in the legacy format --, a damaged
// pickle, no state dict found: the message lists the top-level keys and what they hold,
// a pickled nn.Module instead of its state dict, a big-endian file).
#pragma once
#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <string>

#include "patchbay/export.hpp"

namespace patchbay {

struct TorchCheckpoint {
  std::map<std::string, at::Tensor> tensors;  // name (prefix removed) -> tensor
  std::string nested_under;                   // "" or the key the state dict was found under
  std::string removed_prefix;                 // "" or "module."
};

// True when `file` starts like a zip archive (what torch.save writes since PyTorch 1.6).
PATCHBAY_API bool looks_like_torch_checkpoint(const std::filesystem::path& file);

PATCHBAY_API TorchCheckpoint read_torch_checkpoint(const std::filesystem::path& file);

}  // namespace patchbay
