// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdarg>
#include <cstdint>
#include <string_view>

namespace rp::util {

// Log lines go to stderr through a small dedicated writer thread, so a shard
// never blocks on a full stderr pipe. Lines beyond the bounded backlog are
// dropped and counted. Only `main` and `registry` log (library modules return
// errors instead).
enum class LogLevel { debug, info, warn, error };
// text: `<time> <level> <message>`; json: one object per line,
// {"time","level","msg"} and, for records logged with log_object, their fields.
enum class LogFormat { text, json };

void log_start(LogLevel min_level, LogFormat format = LogFormat::text);
bool log_is_json() noexcept;
// A structured line: `fields` is the inside of a JSON object (`"k":"v",...`,
// already escaped), written after "time" and "level" in JSON format. In text
// format `text` is written instead, as log_line does.
void log_object(LogLevel level, std::string_view fields, std::string_view text) noexcept;
void log_stop() noexcept; // flushes what is queued
void log_line(LogLevel level, std::string_view line) noexcept;
void logf(LogLevel level, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
// Appends a raw, already formatted line (access log).
void log_raw(std::string_view line) noexcept;
// Lines dropped since the start because the backlog was full (stderr slow or blocked).
std::uint64_t log_dropped_total() noexcept;

} // namespace rp::util

#define RP_LOG_INFO(...) ::rp::util::logf(::rp::util::LogLevel::info, __VA_ARGS__)
#define RP_LOG_WARN(...) ::rp::util::logf(::rp::util::LogLevel::warn, __VA_ARGS__)
#define RP_LOG_ERROR(...) ::rp::util::logf(::rp::util::LogLevel::error, __VA_ARGS__)
