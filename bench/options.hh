// SPDX-License-Identifier: Apache-2.0
#pragma once

// `ringport-bench run` options, as parsed from the command line.

#include <cstdint>
#include <string>
#include <vector>

#include "util/result.hh"

namespace rp::bench {

struct Options {
    std::string url;
    std::string workload;
    std::string label;
    std::string json_path;
    std::string repo; // empty: bench/<workload>
    std::string by = "tag";
    std::string evict_root;
    std::string server_cmd;
    std::string ready_path = "/readyz";
    std::string raw_path;
    std::string expect_digest;
    std::string cacert;               // https://: the CA the server's certificate chains to
    std::vector<std::string> headers; // --header "Name: value", on every request
    std::uint64_t size = 64ull << 20;
    std::uint64_t chunk = 8ull << 20;
    std::uint64_t count = 0; // 0: the workload's default
    std::uint64_t concurrency = 1;
    std::uint64_t tags = 10000;
    std::uint64_t repos = 10000;
    std::uint64_t page = 100;
    std::uint64_t layers = 5;
    std::uint64_t layer_size = 8ull << 20;
    std::uint64_t pullers = 16;
    std::uint64_t pushers = 2;
    std::uint64_t threads = 1;
    std::uint64_t setup_concurrency = 16;
    std::uint64_t recv_buffer = 0; // 0: 1 MiB for blob bodies, 64 KiB otherwise
    double duration_s = 0;
    double timeout_s = 60;
    double ready_timeout_s = 300;
    int server_pid = 0;
    bool progress = true;
    bool warmup = true; // pull: one untimed pass over the targets first
    bool count_given = false;
};

inline constexpr const char* workloads[] = {
    "push",      "push-chunked", "pull",     "pull-cold", "manifest-get", "manifest-head",
    "tags-list", "catalog",      "ci-fleet", "ready",     "connect",
};

util::Result<Options> parse_run_options(const std::vector<std::string>& args);
// The default --count of a workload.
std::uint64_t default_count(const std::string& workload);
extern const char* const run_usage;

} // namespace rp::bench
