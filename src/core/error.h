// Errors in turbodiff.
//
// Two kinds, as in most serious engines:
//  - td::Error: bad input (a file, tensor, flag). Carries the subject it is about so the CLI can print
//    "error: <subject>: <message>" and exit non-zero. Thrown, never aborts.
//  - TD_ASSERT: programmer errors (violated internal invariants). Also throws, with file:line, so the CLI still
//    exits cleanly instead of dumping core on a user's machine.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace td {

class Error : public std::runtime_error {
 public:
  Error(std::string subject, const std::string& message)
      : std::runtime_error(subject.empty() ? message : subject + ": " + message), subject_(std::move(subject)) {}
  const std::string& subject() const { return subject_; }

 private:
  std::string subject_;
};

namespace detail {
inline void format_to(std::ostringstream&) {}
template <typename T, typename... Rest>
void format_to(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  format_to(os, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<<: td::cat("tensor ", name, " has ", n, " dims").
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  detail::format_to(os, args...);
  return os.str();
}

[[noreturn]] inline void fail(const std::string& subject, const std::string& message) {
  throw Error(subject, message);
}

}  // namespace td

#define TD_ASSERT(cond, ...)                                                                              \
  do {                                                                                                    \
    if (!(cond)) {                                                                                        \
      throw ::td::Error(::td::cat(__FILE__, ":", __LINE__), ::td::cat("internal check failed: " #cond " ", \
                                                                     ##__VA_ARGS__));                     \
    }                                                                                                     \
  } while (0)

// Check a user-facing condition; the subject names the file/tensor/flag.
#define TD_CHECK(cond, subject, ...)                          \
  do {                                                        \
    if (!(cond)) ::td::fail((subject), ::td::cat(__VA_ARGS__)); \
  } while (0)
