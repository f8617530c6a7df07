// SPDX-License-Identifier: Apache-2.0
#pragma once

// CPU and memory of another process (the server under test), from /proc.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rp::bench {

struct ThreadTicks {
    int tid = 0;
    std::string name; // /proc/PID/task/TID/comm
    std::uint64_t ticks = 0;
};

struct ProcSample {
    std::uint64_t ticks = 0; // utime + stime of the whole process, dead threads included
    std::vector<ThreadTicks> threads;
};

std::optional<ProcSample> sample_proc(int pid);

struct ProcMemory {
    std::uint64_t rss_kb = 0;
    std::uint64_t hwm_kb = 0;
};
std::optional<ProcMemory> proc_memory(int pid);

// utime + stime of one /proc/.../stat line, in clock ticks.
std::optional<std::uint64_t> stat_ticks(const std::string& stat_line);
double seconds_per_tick();

// Sums the CPU a process used over one or more (before, after) pairs.
class ProcCpuDelta {
  public:
    void add(const ProcSample& before, const ProcSample& after);
    double total_s() const { return static_cast<double>(ticks_) * seconds_per_tick(); }
    struct Thread {
        std::string name;
        double cpu_s = 0;
    };
    const std::map<int, Thread>& threads() const { return threads_; }

  private:
    std::uint64_t ticks_ = 0;
    std::map<int, Thread> threads_;
};

// `pid` itself, or, when it is a shell that has exactly one child, that child
// (so `sh -c "ringport serve"` is measured as ringport).
int follow_shell(int pid);

} // namespace rp::bench
