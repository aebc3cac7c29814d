#include "core/log.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace td {

static LogLevel initial_level() {
  const char* e = std::getenv("TD_LOG_LEVEL");
  if (!e) return LogLevel::Info;
  if (!std::strcmp(e, "debug")) return LogLevel::Debug;
  if (!std::strcmp(e, "warn")) return LogLevel::Warn;
  if (!std::strcmp(e, "error")) return LogLevel::Error;
  return LogLevel::Info;
}

static LogLevel g_level = initial_level();

void set_log_level(LogLevel l) { g_level = l; }
LogLevel log_level() { return g_level; }

void log_message(LogLevel l, const std::string& msg) {
  static const char* tags[] = {"debug", "info", "warning", "error"};
  std::fprintf(stderr, "%s: %s\n", tags[int(l)], msg.c_str());
}

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace td
