// Shared by the op dispatchers (src/ops/<op>.cpp): the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
// In a CPU-only build the CUDA branch compiles to a clear error instead of a call to a missing backend.
#pragma once

#include "core/error.h"

#ifdef TD_WITH_CUDA
#define TD_CUDA_OR_FAIL(call, what) call
#else
#define TD_CUDA_OR_FAIL(call, what) ::td::fail(what, "is on cuda but this build has no CUDA backend")
#endif
