// CUDA graph capture pools for the caching device allocator (implemented in src/cuda/device_allocator.cu; CPU-only
// builds get no-op stubs). A captured graph replays with the addresses its kernels saw at capture, so a temporary
// freed during capture must never serve another allocation while the graph may still run. Between begin and end,
// freed blocks go to the pool (and allocations try the pool first: a capture is one stream, so reuse inside it is
// stream-ordered like eager work); release(id) hands the pool's blocks back to the cache once the graph is gone.
#pragma once

namespace td {

int device_pool_begin();  // returns a pool id (> 0); pools do not nest
void device_pool_end();
void device_pool_release(int id);

}  // namespace td
