// SPDX-License-Identifier: Apache-2.0
// ringport-bench: a load generator for any OCI registry (see bench/README.md).
//   ringport-bench run --url http://HOST:PORT --workload W [options]
//   ringport-bench compare A.json B.json [C.json ...]
//   ringport-bench sendfile-server --listen 127.0.0.1:0 --file F
//   ringport-bench webhook-sink [--listen 127.0.0.1:PORT]
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "commands.hh"
#include "workloads.hh"

namespace rp::bench {

namespace {

constexpr const char* usage = R"(usage:
  ringport-bench run --url http://HOST:PORT --workload W [options]   (run --help for options)
  ringport-bench compare A.json B.json [C.json ...]
  ringport-bench sendfile-server --listen 127.0.0.1:0 --file F
  ringport-bench webhook-sink [--listen 127.0.0.1:PORT]
)";

using WorkloadFn = util::Result<void> (*)(RunContext&);

WorkloadFn workload_fn(const std::string& w) {
    if (w == "push" || w == "push-chunked") {
        return run_push;
    }
    if (w == "pull" || w == "pull-cold") {
        return run_pull;
    }
    if (w == "manifest-get" || w == "manifest-head") {
        return run_manifest;
    }
    if (w == "tags-list") {
        return run_tags_list;
    }
    if (w == "catalog") {
        return run_catalog;
    }
    if (w == "ci-fleet") {
        return run_ci_fleet;
    }
    if (w == "connect") {
        return run_connect;
    }
    return run_ready;
}

void add_param(RunReport& r, const char* key, Scalar v) {
    r.params.push_back(Field{key, std::move(v)});
}

std::int64_t i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

void fill_params(const Options& o, RunReport& r) {
    const std::string& w = o.workload;
    bool blob = w == "push" || w == "push-chunked" || w == "pull" || w == "pull-cold";
    if (blob && o.raw_path.empty()) {
        add_param(r, "size", i64(o.size));
    }
    if (w == "push-chunked") {
        add_param(r, "chunk", i64(o.chunk));
    }
    if (o.duration_s > 0) {
        add_param(r, "duration_s", o.duration_s);
    } else {
        add_param(r, "count", i64(o.count));
    }
    if (w != "ci-fleet" && w != "ready") {
        add_param(r, "concurrency", i64(o.concurrency));
    }
    add_param(r, "threads", i64(o.threads));
    if (w == "manifest-get" || w == "manifest-head") {
        add_param(r, "by", o.by);
    }
    if (w == "tags-list") {
        add_param(r, "tags", i64(o.tags));
    }
    if (w == "catalog") {
        add_param(r, "repos", i64(o.repos));
        add_param(r, "page", i64(o.page));
    }
    if (w == "ci-fleet") {
        add_param(r, "layers", i64(o.layers));
        add_param(r, "layer_size", i64(o.layer_size));
        add_param(r, "pullers", i64(o.pullers));
        add_param(r, "pushers", i64(o.pushers));
    }
    if (w == "ready") {
        add_param(r, "server_cmd", o.server_cmd);
        add_param(r, "ready_path", o.ready_path);
    } else if (o.raw_path.empty()) {
        add_param(r, "repo", o.repo);
    } else {
        add_param(r, "raw_path", o.raw_path);
    }
}

double ratio(double a, double b) { return b > 0 ? a / b : not_measured; }

void fill_server(const RunContext& ctx, RunReport& r) {
    const Meter& m = ctx.meter;
    std::optional<ProcMemory> mem = ctx.memory;
    if (!mem && ctx.opt.server_pid > 0) {
        mem = proc_memory(ctx.opt.server_pid);
    }
    if (!m.server_sampled() && !mem) {
        return;
    }
    ServerReport s;
    if (m.server_sampled()) {
        double cpu = m.server().total_s();
        s.cpu_s = cpu;
        s.cpu_us_per_op = ratio(cpu * 1e6, static_cast<double>(r.ops));
        s.cpu_ns_per_byte = ratio(cpu * 1e9, static_cast<double>(r.bytes));
        for (const auto& [tid, t] : m.server().threads()) {
            s.threads.push_back(ThreadCpu{t.name, tid, t.cpu_s});
        }
    }
    if (mem) {
        s.rss_kb = static_cast<double>(mem->rss_kb);
        s.hwm_kb = static_cast<double>(mem->hwm_kb);
    }
    r.server = std::move(s);
}

RunReport build_report(const RunContext& ctx) {
    const Options& o = ctx.opt;
    const Stats& st = ctx.stats;
    RunReport r;
    r.label = o.label;
    r.url = ctx.ep.url;
    r.workload = o.workload;
    fill_params(o, r);
    r.ops = st.ops;
    r.errors = st.errors;
    r.bytes = st.bytes;
    r.seconds = ctx.meter.seconds();
    r.ops_per_s = ratio(static_cast<double>(r.ops), r.seconds);
    r.bytes_per_s = ratio(static_cast<double>(r.bytes), r.seconds);
    if (st.latency_ns.count() > 0) {
        r.p50_us = static_cast<double>(st.latency_ns.quantile(0.50)) / 1e3;
        r.p90_us = static_cast<double>(st.latency_ns.quantile(0.90)) / 1e3;
        r.p99_us = static_cast<double>(st.latency_ns.quantile(0.99)) / 1e3;
        r.max_us = static_cast<double>(st.latency_ns.max()) / 1e3;
    }
    double cpu = ctx.meter.client_cpu_s();
    r.client_cpu_us_per_op = ratio(cpu * 1e6, static_cast<double>(r.ops));
    r.client_cpu_ns_per_byte = ratio(cpu * 1e9, static_cast<double>(r.bytes));
    r.verify_cpu_ns_per_byte =
        ratio(static_cast<double>(st.verify_ns), static_cast<double>(st.verify_bytes));
    r.error_samples = st.error_samples;
    fill_server(ctx, r);
    r.extra = ctx.extra;
    r.extra.push_back(Field{"requests", i64(st.requests)});
    r.extra.push_back(
        Field{"client_cpu_us_per_request", ratio(cpu * 1e6, static_cast<double>(st.requests))});
    r.extra.push_back(Field{"reconnects", i64(st.reconnects)});
    // The tail in counts, steadier than one maximum on a shared machine.
    if (st.latency_ns.count() > 0) {
        r.extra.push_back(
            Field{"latency_p999_us", static_cast<double>(st.latency_ns.quantile(0.999)) / 1e3});
        r.extra.push_back(Field{"requests_from_1ms", i64(st.latency_ns.count_from(1000000))});
        r.extra.push_back(Field{"requests_from_5ms", i64(st.latency_ns.count_from(5000000))});
        r.extra.push_back(Field{"slowest_started_at_monotonic_s",
                                static_cast<double>(st.slowest_start_ns) / 1e9});
    }
    return r;
}

int cmd_run(const std::vector<std::string>& args) {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
        std::fputs(run_usage, stdout);
        return 0;
    }
    auto opt = parse_run_options(args);
    if (!opt) {
        std::fprintf(stderr, "ringport-bench: %s\n%s", opt.error().detail.c_str(), run_usage);
        return 2;
    }
    auto ep = resolve(opt->url, opt->cacert);
    if (!ep) {
        std::fprintf(stderr, "ringport-bench: %s\n", ep.error().detail.c_str());
        return 2;
    }
    for (const std::string& h : opt->headers) {
        ep->extra_headers.append(h).append("\r\n");
    }
    Progress progress(opt->progress, opt->workload);
    Meter meter(opt->server_pid);
    RunContext ctx{*opt, *ep, progress, meter, {}, {}, std::nullopt};
    if (auto r = workload_fn(opt->workload)(ctx); !r) {
        std::fprintf(stderr, "\n!!! ringport-bench %s: %s\n", opt->workload.c_str(),
                     r.error().detail.c_str());
        return 1;
    }
    RunReport report = build_report(ctx);
    print_table(report, stdout);
    if (!opt->json_path.empty()) {
        std::ofstream f(opt->json_path);
        f << to_json(report);
        if (!f.flush()) {
            std::fprintf(stderr, "ringport-bench: cannot write %s\n", opt->json_path.c_str());
            return 1;
        }
    }
    if (report.errors > 0) {
        print_error_banner(report, stdout);
        print_error_banner(report, stderr);
        return 1;
    }
    return 0;
}

} // namespace

} // namespace rp::bench

int main(int argc, char** argv) {
    (void)std::signal(SIGPIPE, SIG_IGN);
    std::vector<std::string> args(argv + std::min(argc, 2), argv + argc);
    std::string cmd = argc >= 2 ? argv[1] : "";
    if (cmd == "run") {
        return rp::bench::cmd_run(args);
    }
    if (cmd == "compare") {
        return rp::bench::cmd_compare(args);
    }
    if (cmd == "sendfile-server") {
        return rp::bench::cmd_sendfile_server(args);
    }
    if (cmd == "webhook-sink") {
        return rp::bench::cmd_webhook_sink(args);
    }
    std::fputs(rp::bench::usage, cmd == "--help" || cmd == "-h" ? stdout : stderr);
    return cmd == "--help" || cmd == "-h" ? 0 : 2;
}
