// Minimal leveled logging to stderr. TD_LOG_LEVEL=debug|info|warn|error (default info); --quiet sets warn.
#pragma once

#include "core/error.h"

namespace td {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };
void set_log_level(LogLevel l);
LogLevel log_level();
void log_message(LogLevel l, const std::string& msg);
// Seconds on a monotonic clock (steady_clock), for the timings the debug and profile output print.
double monotonic_seconds();

template <typename... Args>
void log_info(const Args&... a) { if (log_level() <= LogLevel::Info) log_message(LogLevel::Info, cat(a...)); }
template <typename... Args>
void log_warn(const Args&... a) { if (log_level() <= LogLevel::Warn) log_message(LogLevel::Warn, cat(a...)); }
template <typename... Args>
void log_debug(const Args&... a) { if (log_level() <= LogLevel::Debug) log_message(LogLevel::Debug, cat(a...)); }

}  // namespace td
