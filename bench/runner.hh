// SPDX-License-Identifier: Apache-2.0
#pragma once

// Running a phase (setup or measured) over one or more engine threads, the
// progress line, and the meter that times measured phases.

#include <sys/resource.h>

#include <span>
#include <string>

#include "engine.hh"
#include "procstat.hh"

namespace rp::bench {

// The single updating line on stderr while a phase runs.
class Progress {
  public:
    Progress(bool enabled, std::string workload);
    void begin(std::string phase, const Plan& plan);
    void tick();
    void end();
    LiveCounters& live() { return live_; }
    bool enabled() const { return enabled_; }

  private:
    bool enabled_;
    std::string workload_;
    std::string phase_;
    std::uint64_t total_ = 0;
    double duration_s_ = 0;
    std::int64_t start_ns_ = 0;
    std::int64_t last_ns_ = 0;
    LiveCounters live_;
};

// Wall time, client CPU (getrusage, whole process) and server CPU summed
// over the measured phases; setup in between is not counted.
class Meter {
  public:
    explicit Meter(int server_pid) : server_pid_(server_pid) {}
    void start() noexcept;
    void stop() noexcept;
    double seconds() const { return seconds_; }
    double client_cpu_s() const { return client_cpu_s_; }
    int server_pid() const { return server_pid_; }
    void set_server_pid(int pid) { server_pid_ = pid; }
    bool server_sampled() const { return server_ok_; }
    const ProcCpuDelta& server() const { return server_; }

  private:
    int server_pid_;
    std::int64_t t0_ns_ = 0;
    rusage ru0_{};
    std::optional<ProcSample> s0_;
    double seconds_ = 0;
    double client_cpu_s_ = 0;
    bool server_ok_ = false;
    ProcCpuDelta server_;
};

struct PhaseConfig {
    std::string name; // on the progress line
    EngineConfig engine;
    std::size_t threads = 1;
};

// Runs flows[i] on connection i, connections spread over the threads, until
// `plan` is exhausted. `meter` (measured phases only) times the run from
// the moment every connection is open. Errors here are failures to set up
// (ring, connect); request errors are in the returned Stats.
util::Result<Stats> run_phase(const Endpoint& ep, const PhaseConfig& cfg,
                              std::span<Flow* const> flows, Plan& plan, Meter* meter,
                              Progress* progress);

} // namespace rp::bench
