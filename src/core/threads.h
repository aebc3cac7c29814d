// A small fixed thread pool for CPU ops. parallel_for splits [0, n) into contiguous chunks, one per worker.
#pragma once

#include <cstdint>
#include <functional>

namespace td {

int num_threads();                 // TD_NUM_THREADS env var, else hardware concurrency
void set_num_threads(int n);
// Calls fn(begin, end) on disjoint chunks covering [0, n). Runs inline when n is small or one thread is set.
// `grain` is the smallest chunk worth a thread.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

}  // namespace td
