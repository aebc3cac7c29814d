#include "core/threads.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace td {

namespace {

class Pool {
 public:
  explicit Pool(int n) : size_(n) {
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      gen_++;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return size_; }

  // Runs task(i) for i in [0, size) with worker i; the caller is worker 0.
  void run(const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> run_lock(run_mu_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lk(mu_);
      task_ = &task;
      pending_ = size_ - 1;
      error_ = nullptr;
      gen_++;
    }
    cv_.notify_all();
    try {
      task(0);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
    }
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* task;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_ != seen; });
        seen = gen_;
        if (stop_) return;
        task = task_;
      }
      if (!task) continue;
      try {
        (*task)(id);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  int size_;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* task_ = nullptr;
  int pending_ = 0;
  uint64_t gen_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

int g_threads = 0;
std::unique_ptr<Pool> g_pool;
std::mutex g_pool_mu;
thread_local bool t_in_parallel = false;

int default_threads() {
  if (const char* e = std::getenv("TD_NUM_THREADS")) {
    int n = std::atoi(e);
    if (n > 0) return n;
  }
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (!g_threads) g_threads = default_threads();
  if (!g_pool || g_pool->size() != g_threads) {
    g_pool.reset();
    g_pool.reset(new Pool(g_threads));
  }
  return *g_pool;
}

}  // namespace

int num_threads() {
  if (!g_threads) g_threads = default_threads();
  return g_threads;
}

void set_num_threads(int n) { g_threads = std::max(1, n); }

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  if (n <= 0) return;
  int nt = num_threads();
  int64_t chunks = std::min<int64_t>(nt, (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1));
  if (chunks <= 1 || t_in_parallel) {  // nested regions run inline
    fn(0, n);
    return;
  }
  Pool& p = pool();
  int64_t per = (n + p.size() - 1) / p.size();
  p.run([&](int id) {
    int64_t b = int64_t(id) * per, e = std::min(n, b + per);
    if (b >= e) return;
    t_in_parallel = true;
    try {
      fn(b, e);
    } catch (...) {
      t_in_parallel = false;
      throw;
    }
    t_in_parallel = false;
  });
}

}  // namespace td
