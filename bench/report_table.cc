// SPDX-License-Identifier: Apache-2.0
// The human-readable side of a report: the table `run` prints on stdout and
// the banner of a run that had errors.
#include <cmath>
#include <string>

#include "report.hh"

namespace rp::bench {

namespace {

std::string num(double v, int decimals = 1) {
    if (!std::isfinite(v)) {
        return "-";
    }
    char buf[48];
    (void)std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

// Three significant digits or more: 0.0123, 1.23, 123, 12345.
std::string sig(double v) {
    if (!std::isfinite(v)) {
        return "-";
    }
    double a = std::fabs(v);
    int decimals = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.1 ? 3 : 4;
    return num(v, decimals);
}

void row(std::FILE* out, const char* name, const std::string& text) {
    (void)std::fprintf(out, "  %-14s %s\n", name, text.c_str());
}

std::string fields_text(const std::vector<Field>& fields) {
    std::string s;
    for (const Field& f : fields) {
        std::string v = scalar_text(f.value);
        if (v.empty()) {
            continue;
        }
        s += s.empty() ? "" : "  ";
        s += f.key + "=" + v;
    }
    return s;
}

void print_server(const ServerReport& s, std::FILE* out) {
    if (std::isfinite(s.cpu_s)) {
        row(out, "server CPU",
            sig(s.cpu_us_per_op) + " us/op   " + sig(s.cpu_ns_per_byte) + " ns/B   (" +
                sig(s.cpu_s) + " s in the measured phase)");
        std::string threads;
        for (const ThreadCpu& t : s.threads) {
            if (t.cpu_s <= 0) {
                continue; // idle threads stay in the JSON
            }
            threads += threads.empty() ? "" : ", ";
            threads += t.name + "[" + std::to_string(t.tid) + "] " + sig(t.cpu_s) + " s";
        }
        row(out, "  threads", threads.empty() ? "-" : threads);
    }
    if (std::isfinite(s.rss_kb)) {
        row(out, "server memory",
            "VmRSS " + num(s.rss_kb, 0) + " kB   VmHWM " + num(s.hwm_kb, 0) + " kB");
    }
}

} // namespace

void print_table(const RunReport& r, std::FILE* out) {
    (void)std::fprintf(out, "== ringport-bench %s  %s%s%s\n", r.workload.c_str(), r.url.c_str(),
                       r.label.empty() ? "" : "  label ", r.label.c_str());
    row(out, "params", fields_text(r.params));
    row(out, "ops",
        std::to_string(r.ops) + "   errors " + std::to_string(r.errors) +
            (r.errors > 0 ? "   <-- ERRORS" : ""));
    row(out, "seconds", sig(r.seconds));
    row(out, "ops/s", sig(r.ops_per_s));
    row(out, "throughput",
        num(r.bytes_per_s / 1e6, 1) + " MB/s   " + num(r.bytes_per_s / 1e9, 3) + " GB/s   (" +
            std::to_string(r.bytes) + " bytes)");
    row(out, "latency us",
        "p50 " + sig(r.p50_us) + "   p90 " + sig(r.p90_us) + "   p99 " + sig(r.p99_us) + "   max " +
            sig(r.max_us));
    row(out, "client CPU",
        sig(r.client_cpu_us_per_op) + " us/op   " + sig(r.client_cpu_ns_per_byte) +
            " ns/B   (of which verifying: " + sig(r.verify_cpu_ns_per_byte) + " ns/B)");
    if (r.server) {
        print_server(*r.server, out);
    }
    if (!r.extra.empty()) {
        row(out, "extra", fields_text(r.extra));
    }
    (void)std::fflush(out);
}

void print_error_banner(const RunReport& r, std::FILE* out) {
    std::uint64_t total = r.ops + r.errors;
    const char* bar = "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";
    (void)std::fprintf(out,
                       "%s\n!!! %s: %llu ERROR%s in %llu operations: THE RESULTS ARE NOT VALID\n",
                       bar, r.workload.c_str(), static_cast<unsigned long long>(r.errors),
                       r.errors == 1 ? "" : "S", static_cast<unsigned long long>(total));
    for (const std::string& s : r.error_samples) {
        (void)std::fprintf(out, "!!!   %s\n", s.c_str());
    }
    (void)std::fprintf(out, "%s\n", bar);
    (void)std::fflush(out);
}

} // namespace rp::bench
