// SPDX-License-Identifier: Apache-2.0
#include "util/log.hh"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "util/strings.hh"

namespace rp::util {
namespace {

constexpr std::size_t backlog_bytes_max = 4u << 20;
constexpr std::size_t wake_bytes = 64u << 10;

struct Logger {
    std::mutex mu;
    std::condition_variable cv;
    std::string pending;
    std::size_t dropped = 0; // since the writer last reported it
    std::atomic<std::uint64_t> dropped_total{0};
    bool stopping = false;
    bool running = false;
    std::thread writer;
    LogLevel min_level = LogLevel::info;
    std::atomic<bool> json{false};
};

Logger& logger() {
    static Logger l;
    return l;
}

void write_all(const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        ssize_t n = ::write(2, s.data() + off, s.size() - off);
        if (n <= 0) {
            return; // stderr gone: nothing sensible to do
        }
        off += static_cast<std::size_t>(n);
    }
}

void writer_main() {
    (void)pthread_setname_np(pthread_self(), "rp-log");
    Logger& l = logger();
    std::unique_lock lk(l.mu);
    for (;;) {
        l.cv.wait_for(lk, std::chrono::milliseconds(50),
                      [&] { return l.stopping || l.pending.size() >= wake_bytes; });
        std::string out;
        out.swap(l.pending);
        std::size_t dropped = std::exchange(l.dropped, 0);
        bool stop = l.stopping;
        lk.unlock();
        if (dropped != 0) {
            out += "ringport: log backlog full, dropped " + std::to_string(dropped) + " lines\n";
        }
        write_all(out);
        lk.lock();
        if (stop && l.pending.empty()) {
            return;
        }
    }
}

void append(std::string_view line) noexcept {
    Logger& l = logger();
    std::lock_guard lk(l.mu);
    if (!l.running) {
        std::string s(line);
        s.push_back('\n');
        write_all(s);
        return;
    }
    if (l.pending.size() + line.size() + 1 > backlog_bytes_max) {
        ++l.dropped;
        l.dropped_total.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    l.pending.append(line);
    l.pending.push_back('\n');
}

const char* level_name(LogLevel level) {
    switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
    }
    return "?";
}

} // namespace

void log_start(LogLevel min_level, LogFormat format) {
    Logger& l = logger();
    std::lock_guard lk(l.mu);
    l.min_level = min_level;
    l.json.store(format == LogFormat::json, std::memory_order_relaxed);
    if (l.running) {
        return;
    }
    l.running = true;
    l.stopping = false;
    l.writer = std::thread(writer_main);
}

void log_stop() noexcept {
    Logger& l = logger();
    {
        std::lock_guard lk(l.mu);
        if (!l.running) {
            return;
        }
        l.stopping = true;
    }
    l.cv.notify_all();
    l.writer.join();
    std::lock_guard lk(l.mu);
    l.running = false;
}

void log_raw(std::string_view line) noexcept { append(line); }

std::uint64_t log_dropped_total() noexcept {
    return logger().dropped_total.load(std::memory_order_relaxed);
}

bool log_is_json() noexcept { return logger().json.load(std::memory_order_relaxed); }

namespace {

std::string now_text() {
    char ts[32];
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    (void)gmtime_r(&t, &tm);
    std::size_t n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(ts, n);
}

// {"time":"...","level":"..." and a comma: the start of a JSON line.
std::string json_head(LogLevel level) {
    std::string s = "{\"time\":\"";
    s += now_text();
    s += "\",\"level\":\"";
    s += level_name(level);
    s += "\",";
    return s;
}

} // namespace

void log_object(LogLevel level, std::string_view fields, std::string_view text) noexcept {
    if (level < logger().min_level) {
        return;
    }
    if (!log_is_json()) {
        log_line(level, text);
        return;
    }
    std::string s = json_head(level);
    s.append(fields);
    s.push_back('}');
    append(s);
}

void log_line(LogLevel level, std::string_view line) noexcept {
    if (level < logger().min_level) {
        return;
    }
    if (log_is_json()) {
        std::string s = json_head(level);
        s += "\"msg\":\"";
        json_escape(s, line);
        s += "\"}";
        append(s);
        return;
    }
    std::string s = now_text();
    s += " ";
    s += level_name(level);
    s += " ";
    s.append(line);
    append(s);
}

void logf(LogLevel level, const char* fmt, ...) noexcept {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    // The analyzer does not see va_start through <cstdarg>'s macro here.
    int n = std::vsnprintf(buf, sizeof buf, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    if (n < 0) {
        return;
    }
    std::size_t len =
        static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1;
    log_line(level, std::string_view(buf, len));
}

} // namespace rp::util
