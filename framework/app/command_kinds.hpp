// How much a command computes, the third column of commands.def.
#pragma once

namespace patchbay::cli {

enum CommandCompute {
  kNoCompute = 0,  // reads and writes files only
  kTensors = 1,    // runs tensor code: OpenMP's passive wait policy, OpenBLAS's best kernels
  kTraining = 2,   // trains or measures in this process: also prepare_compute_process()
};

}  // namespace patchbay::cli
