// SPDX-License-Identifier: Apache-2.0
// `ringport-bench compare A.json B.json [C.json ...]`: the runs side by side,
// each later run's ratio to the first, and which run is better for metrics
// with a direction (throughput up, latency and CPU down).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "commands.hh"
#include "report.hh"

namespace rp::bench {

namespace {

struct Row {
    std::string name;
    int direction = 0; // +1: higher is better, -1: lower is better, 0: neither
    std::vector<double> values;
    std::vector<std::string> texts; // for non-numeric extras
};

double server_value(const RunReport& r, double ServerReport::*m) {
    return r.server ? (*r.server).*m : not_measured;
}

std::vector<Row> core_rows(const std::vector<RunReport>& runs) {
    struct Spec {
        const char* name;
        int dir;
        double (*get)(const RunReport&);
    };
    static const Spec specs[] = {
        {"ops", 0, [](const RunReport& r) { return static_cast<double>(r.ops); }},
        {"errors", -1, [](const RunReport& r) { return static_cast<double>(r.errors); }},
        {"seconds", 0, [](const RunReport& r) { return r.seconds; }},
        {"ops/s", 1, [](const RunReport& r) { return r.ops_per_s; }},
        {"MB/s", 1, [](const RunReport& r) { return r.bytes_per_s / 1e6; }},
        {"latency p50 us", -1, [](const RunReport& r) { return r.p50_us; }},
        {"latency p90 us", -1, [](const RunReport& r) { return r.p90_us; }},
        {"latency p99 us", -1, [](const RunReport& r) { return r.p99_us; }},
        {"latency max us", -1, [](const RunReport& r) { return r.max_us; }},
        {"client CPU us/op", -1, [](const RunReport& r) { return r.client_cpu_us_per_op; }},
        {"client CPU ns/B", -1, [](const RunReport& r) { return r.client_cpu_ns_per_byte; }},
        {"verify CPU ns/B", -1, [](const RunReport& r) { return r.verify_cpu_ns_per_byte; }},
        {"server CPU us/op", -1,
         [](const RunReport& r) { return server_value(r, &ServerReport::cpu_us_per_op); }},
        {"server CPU ns/B", -1,
         [](const RunReport& r) { return server_value(r, &ServerReport::cpu_ns_per_byte); }},
        {"server RSS kB", -1,
         [](const RunReport& r) { return server_value(r, &ServerReport::rss_kb); }},
        {"server HWM kB", -1,
         [](const RunReport& r) { return server_value(r, &ServerReport::hwm_kb); }},
    };
    std::vector<Row> rows;
    for (const Spec& s : specs) {
        Row row{s.name, s.dir, {}, {}};
        for (const RunReport& r : runs) {
            row.values.push_back(s.get(r));
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

int extra_direction(const std::string& key) {
    auto ends = [&](std::string_view s) {
        return key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0;
    };
    if (ends("_per_s")) {
        return 1;
    }
    if (ends("_ms") || ends("_us") || ends("_seconds") || ends("_s") || ends("_kb") ||
        ends("_per_op") || ends("_per_request")) {
        return -1;
    }
    return 0;
}

void extra_rows(const std::vector<RunReport>& runs, std::vector<Row>& rows) {
    std::vector<std::string> keys;
    for (const RunReport& r : runs) {
        for (const Field& f : r.extra) {
            if (std::find(keys.begin(), keys.end(), f.key) == keys.end()) {
                keys.push_back(f.key);
            }
        }
    }
    for (const std::string& k : keys) {
        Row row{k, extra_direction(k), {}, {}};
        bool numeric = true;
        for (const RunReport& r : runs) {
            const Scalar* v = find_field(r.extra, k);
            double d = not_measured;
            if (v != nullptr && std::holds_alternative<double>(*v)) {
                d = std::get<double>(*v);
            } else if (v != nullptr && std::holds_alternative<std::int64_t>(*v)) {
                d = static_cast<double>(std::get<std::int64_t>(*v));
            } else if (v != nullptr) {
                numeric = false;
            }
            row.values.push_back(d);
            row.texts.push_back(v != nullptr ? scalar_text(*v) : "-");
        }
        if (numeric) {
            row.texts.clear();
        } else {
            row.direction = 0;
        }
        rows.push_back(std::move(row));
    }
}

std::string cell(double v) {
    if (!std::isfinite(v)) {
        return "-";
    }
    char buf[32];
    double a = std::fabs(v);
    if (a > 0 && a < 0.01) {
        (void)std::snprintf(buf, sizeof buf, "%.2g", v);
        return buf;
    }
    int decimals = a >= 1000 || v == std::floor(v) ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
    (void)std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string better(const Row& row, const std::vector<std::string>& names) {
    if (row.direction == 0 || row.values.size() < 2) {
        return "";
    }
    std::size_t best = row.values.size();
    for (std::size_t i = 0; i < row.values.size(); ++i) {
        double v = row.values[i];
        if (!std::isfinite(v)) {
            return "";
        }
        if (best == row.values.size() ||
            (row.direction > 0 ? v > row.values[best] : v < row.values[best])) {
            best = i;
        }
    }
    double lo = *std::min_element(row.values.begin(), row.values.end());
    double hi = *std::max_element(row.values.begin(), row.values.end());
    if (hi - lo <= 0.02 * std::max(std::fabs(hi), std::fabs(lo))) {
        return "=";
    }
    return names[best];
}

void print_rows(const std::vector<Row>& rows, const std::vector<std::string>& names) {
    std::printf("%-26s", "metric");
    for (std::size_t i = 0; i < names.size(); ++i) {
        std::printf(" %14.14s", names[i].c_str());
        if (i > 0) {
            std::printf(" %8s", (std::to_string(i + 1) + "/1").c_str());
        }
    }
    std::printf("  better\n");
    for (const Row& row : rows) {
        std::printf("%-26.26s", row.name.c_str());
        for (std::size_t i = 0; i < row.values.size(); ++i) {
            std::printf(" %14.14s",
                        row.texts.empty() ? cell(row.values[i]).c_str() : row.texts[i].c_str());
            if (i > 0) {
                double r = row.texts.empty() && row.values[0] != 0 ? row.values[i] / row.values[0]
                                                                   : not_measured;
                std::printf(" %8s", std::isfinite(r) ? (cell(r) + "x").c_str() : "-");
            }
        }
        std::printf("  %s\n", better(row, names).c_str());
    }
}

} // namespace

int cmd_compare(const std::vector<std::string>& args) {
    if (args.size() < 2) {
        std::fputs("usage: ringport-bench compare A.json B.json [C.json ...]\n", stderr);
        return 2;
    }
    std::vector<RunReport> runs;
    std::vector<std::string> names;
    for (const std::string& path : args) {
        std::ifstream f(path);
        std::stringstream ss;
        ss << f.rdbuf();
        auto r = parse_report(ss.str());
        if (!f || !r) {
            std::fprintf(stderr, "ringport-bench compare: %s: %s\n", path.c_str(),
                         f ? r.error().detail.c_str() : "cannot read");
            return 1;
        }
        names.push_back(r->label.empty() ? path : r->label);
        runs.push_back(std::move(*r));
    }
    std::printf("compare: %s", runs[0].workload.c_str());
    for (std::size_t i = 0; i < runs.size(); ++i) {
        std::printf("%s  [%zu] %s = %s", i == 0 ? "\n" : "\n", i + 1, names[i].c_str(),
                    runs[i].url.c_str());
        if (runs[i].workload != runs[0].workload) {
            std::printf("   (WORKLOAD DIFFERS: %s)", runs[i].workload.c_str());
        }
        if (runs[i].errors > 0) {
            std::printf("   (HAD %llu ERRORS)", static_cast<unsigned long long>(runs[i].errors));
        }
    }
    std::printf("\n\n");
    std::vector<Row> rows = core_rows(runs);
    extra_rows(runs, rows);
    print_rows(rows, names);
    return 0;
}

} // namespace rp::bench
