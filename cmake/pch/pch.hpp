// The precompiled header shared by every LibTorch-using target. Only stable, heavy,
// third-party headers belong here; a change forces every target to rebuild.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/nn.h>
