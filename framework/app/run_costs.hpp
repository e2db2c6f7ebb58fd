// What each planned run will cost, for the sweep's ETA (sweep_eta.hpp).
#pragma once
#include <vector>

#include "patchbay/config.hpp"
#include "patchbay/registry.hpp"
#include "sweep_eta.hpp"

namespace patchbay::cli {

// One RunCost per run, in order: its family (the dataset, front end and backbone slots with
// their options, and train.batch_size, as text), train.epochs, and the tokens its patcher
// makes. The tokens need the patchers built, which is tensor code; a host that forks workers
// must run none itself (worker_pool.cpp), so they are computed in a short-lived child
// process. A run whose patcher cannot be built (it will fail on its own), or a child that
// fails, counts as 1 token. Never throws for a bad run.
std::vector<RunCost> run_costs(const std::vector<const PlannedRun*>& runs, const Registry& registry);

}  // namespace patchbay::cli
