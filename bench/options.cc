// SPDX-License-Identifier: Apache-2.0
#include "options.hh"

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>
#include <string_view>

#include "http_parse.hh"
#include "util/strings.hh"

namespace rp::bench {

using util::Errc;
using util::Error;
using util::Result;

const char* const run_usage =
    R"(usage: ringport-bench run --url http://HOST:PORT --workload W [options]
  W = push | push-chunked | pull | pull-cold | manifest-get | manifest-head |
      tags-list | catalog | ci-fleet | ready
  --size BYTES         blob size for push and pull (default 64MiB; 4KiB, 1GB... accepted)
  --chunk BYTES        PATCH size for push-chunked (default 8MiB)
  --count N            operations (default depends on the workload; catalog: walks,
                       ci-fleet: rounds, ready: server starts)
  --concurrency C      parallel connections (default 1)
  --duration S         run for S seconds instead of --count (pull, manifest, tags, catalog)
  --by tag|digest      manifest-get/head reference (default tag)
  --repo NAME          repository (default bench/<workload>; catalog: the name prefix)
  --tags N             tags created for tags-list (default 10000)
  --repos N            repositories created for catalog (default 10000)
  --page N             catalog page size n (default 100)
  --layers N --layer-size BYTES --pullers N --pushers N
                       ci-fleet image and clients (defaults 5, 8MiB, 16, 2)
  --evict-root DIR     pull-cold: drop DIR's files from the page cache before each round
  --server-cmd "CMD"   ready: the server command (run with sh -c)
  --ready-url-path P   ready: readiness path (default /readyz; "" means /v2/)
  --raw-path /x --expect-digest sha256:...
                       pull a fixed path (e.g. from `ringport-bench sendfile-server`),
                       sent with the manifest Accept header (a manifest path works too)
  --server-pid PID     sample the server's CPU, threads and memory from /proc
  --threads T          client threads, each with its own io_uring (default 1)
  --setup-concurrency C  connections for the untimed setup (default 16)
  --recv-buffer BYTES  receive buffer per connection (default 1MiB for blobs, else 64KiB)
  --timeout S          fail the run when nothing completes for S seconds (default 60)
  --ready-timeout S    ready: give up after S seconds (default 300)
  --no-warmup          pull: no untimed warm-up pull first (a pull-through mirror's
                       cold fetch must be the timed one)
  --header "N: V"      an extra header on every request (repeatable), e.g. Authorization
  --cacert FILE        https:// URLs: the CA the server's certificate must chain to
                       (default: the system's); every connection makes a full handshake
  --label L  --json FILE  --no-progress
)";

std::uint64_t default_count(const std::string& w) {
    static const std::map<std::string, std::uint64_t, std::less<>> counts = {
        {"push", 8},        {"push-chunked", 8},     {"pull", 32},
        {"pull-cold", 8},   {"manifest-get", 20000}, {"manifest-head", 20000},
        {"tags-list", 200}, {"catalog", 3},          {"ci-fleet", 1},
        {"ready", 1},       {"connect", 2000},
    };
    auto it = counts.find(w);
    return it == counts.end() ? 1 : it->second;
}

namespace {

using Setter = std::function<Result<void>(Options&, const std::string&)>;

Error bad(const std::string& flag, const std::string& v) {
    return Error::of(Errc::invalid, "bad value for " + flag + ": '" + v + "'");
}

Setter str(std::string Options::*m) {
    return [m](Options& o, const std::string& v) -> Result<void> {
        o.*m = v;
        return util::Ok{};
    };
}

Setter count(std::uint64_t Options::*m, const char* flag, bool sized = false) {
    return [m, flag, sized](Options& o, const std::string& v) -> Result<void> {
        auto n = sized ? parse_size(v) : util::parse_u64(v);
        if (!n) {
            return bad(flag, v);
        }
        o.*m = *n;
        return util::Ok{};
    };
}

Setter seconds(double Options::*m, const char* flag) {
    return [m, flag](Options& o, const std::string& v) -> Result<void> {
        double d = 0;
        auto r = std::from_chars(v.data(), v.data() + v.size(), d);
        if (r.ec != std::errc{} || r.ptr != v.data() + v.size() || d < 0) {
            return bad(flag, v);
        }
        o.*m = d;
        return util::Ok{};
    };
}

const std::map<std::string, Setter, std::less<>>& setters() {
    static const std::map<std::string, Setter, std::less<>> s = {
        {"--url", str(&Options::url)},
        {"--workload", str(&Options::workload)},
        {"--label", str(&Options::label)},
        {"--json", str(&Options::json_path)},
        {"--repo", str(&Options::repo)},
        {"--by", str(&Options::by)},
        {"--evict-root", str(&Options::evict_root)},
        {"--server-cmd", str(&Options::server_cmd)},
        {"--ready-url-path", str(&Options::ready_path)},
        {"--raw-path", str(&Options::raw_path)},
        {"--expect-digest", str(&Options::expect_digest)},
        {"--cacert", str(&Options::cacert)},
        {"--header",
         [](Options& o, const std::string& v) -> Result<void> {
             if (v.find(':') == std::string::npos || v.find_first_of("\r\n") != std::string::npos) {
                 return Error::of(Errc::invalid, "--header wants 'Name: value', got '" + v + "'");
             }
             o.headers.push_back(v);
             return util::Ok{};
         }},
        {"--size", count(&Options::size, "--size", true)},
        {"--chunk", count(&Options::chunk, "--chunk", true)},
        {"--layer-size", count(&Options::layer_size, "--layer-size", true)},
        {"--recv-buffer", count(&Options::recv_buffer, "--recv-buffer", true)},
        {"--concurrency", count(&Options::concurrency, "--concurrency")},
        {"--tags", count(&Options::tags, "--tags")},
        {"--repos", count(&Options::repos, "--repos")},
        {"--page", count(&Options::page, "--page")},
        {"--layers", count(&Options::layers, "--layers")},
        {"--pullers", count(&Options::pullers, "--pullers")},
        {"--pushers", count(&Options::pushers, "--pushers")},
        {"--threads", count(&Options::threads, "--threads")},
        {"--setup-concurrency", count(&Options::setup_concurrency, "--setup-concurrency")},
        {"--duration", seconds(&Options::duration_s, "--duration")},
        {"--timeout", seconds(&Options::timeout_s, "--timeout")},
        {"--ready-timeout", seconds(&Options::ready_timeout_s, "--ready-timeout")},
        {"--count",
         [](Options& o, const std::string& v) -> Result<void> {
             auto n = util::parse_u64(v);
             if (!n) {
                 return bad("--count", v);
             }
             o.count = *n;
             o.count_given = true;
             return util::Ok{};
         }},
        {"--server-pid",
         [](Options& o, const std::string& v) -> Result<void> {
             auto n = util::parse_u64(v);
             if (!n || *n == 0 || *n > INT32_MAX) {
                 return bad("--server-pid", v);
             }
             o.server_pid = static_cast<int>(*n);
             return util::Ok{};
         }},
    };
    return s;
}

Result<void> check_workload(const Options& o) {
    const std::string& w = o.workload;
    if (std::find(std::begin(workloads), std::end(workloads), w) == std::end(workloads)) {
        return Error::of(Errc::invalid, "unknown --workload '" + w + "'");
    }
    if (o.duration_s > 0 &&
        (w == "push" || w == "push-chunked" || w == "ci-fleet" || w == "ready")) {
        return Error::of(Errc::invalid, "--duration does not apply to " + w + "; use --count");
    }
    if (w == "pull-cold" && o.evict_root.empty()) {
        return Error::of(Errc::invalid, "pull-cold needs --evict-root DIR (the server's root)");
    }
    if (w == "ready" && o.server_cmd.empty()) {
        return Error::of(Errc::invalid, "ready needs --server-cmd \"CMD ...\"");
    }
    if (!o.raw_path.empty() && (o.expect_digest.empty() || (w != "pull" && w != "pull-cold"))) {
        return Error::of(Errc::invalid, "--raw-path needs --workload pull and --expect-digest");
    }
    return util::Ok{};
}

Result<void> check(const Options& o) {
    if (o.url.empty() || o.workload.empty()) {
        return Error::of(Errc::invalid, "--url and --workload are required");
    }
    if (o.by != "tag" && o.by != "digest") {
        return Error::of(Errc::invalid, "--by must be tag or digest");
    }
    if (o.concurrency == 0 || o.chunk == 0 || o.page == 0 || o.threads == 0 || o.pullers == 0 ||
        o.setup_concurrency == 0 || o.layers == 0 || (o.count_given && o.count == 0)) {
        return Error::of(Errc::invalid, "counts, sizes of chunks and pages must be at least 1");
    }
    return check_workload(o);
}

} // namespace

Result<Options> parse_run_options(const std::vector<std::string>& args) {
    Options o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string flag = args[i];
        std::string value;
        bool inline_value = false;
        if (std::size_t eq = flag.find('='); eq != std::string::npos && flag.rfind("--", 0) == 0) {
            value = flag.substr(eq + 1);
            flag.resize(eq);
            inline_value = true;
        }
        if (flag == "--no-progress") {
            o.progress = false;
            continue;
        }
        if (flag == "--no-warmup") {
            o.warmup = false;
            continue;
        }
        auto it = setters().find(flag);
        if (it == setters().end()) {
            return Error::of(Errc::invalid, "unknown option '" + flag + "'");
        }
        if (!inline_value) {
            if (i + 1 >= args.size()) {
                return Error::of(Errc::invalid, flag + " needs a value");
            }
            value = args[++i];
        }
        if (auto r = it->second(o, value); !r) {
            return std::move(r).error();
        }
    }
    if (auto r = check(o); !r) {
        return std::move(r).error();
    }
    if (!o.count_given) {
        o.count = default_count(o.workload);
    }
    if (o.repo.empty()) {
        o.repo = "bench/" + o.workload;
    }
    return o;
}

} // namespace rp::bench
