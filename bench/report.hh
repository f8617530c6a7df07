// SPDX-License-Identifier: Apache-2.0
#pragma once

// One run's results: the JSON document (schema 1) written by `run` and read
// by `compare`, and the human table.
//
// {"tool":"ringport-bench","schema":1,"label","url","workload","params":{...},
//  "results":{"ops","errors","bytes","seconds","ops_per_s","bytes_per_s",
//             "latency_us":{"p50","p90","p99","max"},"client_cpu_us_per_op",
//             "client_cpu_ns_per_byte","verify_cpu_ns_per_byte","error_samples":[...]},
//  "server":null | {"cpu_us_per_op","cpu_ns_per_byte","cpu_s",
//                   "threads":[{"name","tid","cpu_s"}],"rss_kb","hwm_kb"},
//  "extra":{...}}
// A number that was not measured (no bytes moved, no server sampled) is null.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "util/result.hh"

namespace rp::bench {

inline constexpr double not_measured = std::numeric_limits<double>::quiet_NaN();

using Scalar = std::variant<bool, std::int64_t, double, std::string>;

struct Field {
    std::string key;
    Scalar value;
};

struct ThreadCpu {
    std::string name;
    std::int64_t tid = 0;
    double cpu_s = 0;
};

struct ServerReport {
    double cpu_us_per_op = not_measured;
    double cpu_ns_per_byte = not_measured;
    double cpu_s = not_measured;
    std::vector<ThreadCpu> threads;
    double rss_kb = not_measured;
    double hwm_kb = not_measured;
};

struct RunReport {
    std::string label;
    std::string url;
    std::string workload;
    std::vector<Field> params;
    std::uint64_t ops = 0;
    std::uint64_t errors = 0;
    std::uint64_t bytes = 0;
    double seconds = 0;
    double ops_per_s = 0;
    double bytes_per_s = 0;
    double p50_us = not_measured;
    double p90_us = not_measured;
    double p99_us = not_measured;
    double max_us = not_measured;
    double client_cpu_us_per_op = not_measured;
    double client_cpu_ns_per_byte = not_measured;
    double verify_cpu_ns_per_byte = not_measured;
    std::vector<std::string> error_samples;
    std::optional<ServerReport> server;
    std::vector<Field> extra;
};

std::string to_json(const RunReport& r);
util::Result<RunReport> parse_report(std::string_view json);
// The extra (or param) named `key`, if present.
const Scalar* find_field(const std::vector<Field>& fields, std::string_view key);
std::string scalar_text(const Scalar& v);

void print_table(const RunReport& r, std::FILE* out);
// The loud banner of a run with errors.
void print_error_banner(const RunReport& r, std::FILE* out);

} // namespace rp::bench
