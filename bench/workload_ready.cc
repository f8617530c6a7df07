// SPDX-License-Identifier: Apache-2.0
// ready: start a server command on a pre-populated root and time how long
// until GET /v2/ answers 200, until the readiness path answers 200, and a
// full catalog walk at n=100 following Link headers. Then stop the server:
// SIGTERM to its process group, SIGKILL after 10 s.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <thread>

#include "list_flows.hh"
#include "workloads.hh"

namespace rp::bench {

using util::Errc;
using util::Error;
using util::Result;

namespace {

volatile std::sig_atomic_t child_group = 0;

extern "C" void on_signal(int sig) {
    if (child_group > 0) {
        (void)::kill(-child_group, SIGTERM);
    }
    ::_exit(128 + sig);
}

struct Server {
    pid_t pid = -1;
    std::string log_path;
    int status = 0;
    bool exited = false;
};

Result<Server> spawn(const std::string& cmd) {
    Server s;
    char tmpl[] = "/tmp/ringport-bench-server-XXXXXX";
    int log = ::mkstemp(tmpl);
    if (log < 0) {
        return Error::sys(errno, "mkstemp");
    }
    s.log_path = tmpl;
    s.pid = ::fork();
    if (s.pid < 0) {
        (void)::close(log);
        return Error::sys(errno, "fork");
    }
    if (s.pid == 0) {
        (void)::setpgid(0, 0);
        int null = ::open("/dev/null", O_RDONLY);
        (void)::dup2(null, 0);
        (void)::dup2(log, 1);
        (void)::dup2(log, 2);
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    (void)::setpgid(s.pid, s.pid); // also here, so no race with kill(-pid)
    (void)::close(log);
    child_group = s.pid;
    return s;
}

bool reap(Server& s) {
    if (!s.exited && ::waitpid(s.pid, &s.status, WNOHANG) == s.pid) {
        s.exited = true;
    }
    return s.exited;
}

// Reaps what is left of the group (we are the subreaper of orphans) and
// says whether any of it is still alive.
bool group_alive(pid_t group) {
    while (::waitpid(-group, nullptr, WNOHANG) > 0) {
    }
    return ::kill(-group, 0) == 0;
}

std::string log_tail(const Server& s) {
    int fd = ::open(s.log_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return {};
    }
    off_t size = ::lseek(fd, 0, SEEK_END);
    off_t from = std::max<off_t>(0, size - 2048);
    std::string text(static_cast<std::size_t>(size - from), '\0');
    ssize_t n = ::pread(fd, text.data(), text.size(), from);
    (void)::close(fd);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return text;
}

// Stops the server's whole process group (a `sh -c` wrapper may exit
// before the server does); returns ms from SIGTERM until the group is gone.
double stop(Server& s) {
    std::int64_t t0 = now_ns();
    (void)::kill(-s.pid, SIGTERM);
    while ((!reap(s) || group_alive(s.pid)) && now_ns() - t0 < 10'000'000'000) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    double ms = static_cast<double>(now_ns() - t0) / 1e6;
    if (!s.exited || group_alive(s.pid)) {
        (void)::kill(-s.pid, SIGKILL);
        if (!s.exited) {
            (void)::waitpid(s.pid, &s.status, 0);
            s.exited = true;
        }
        for (int i = 0; i < 1000 && group_alive(s.pid); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    child_group = 0;
    (void)::unlink(s.log_path.c_str());
    return ms;
}

// Polls GET path until 200; returns ms since t0.
Result<double> wait_for(RunContext& ctx, Server& s, const std::string& path, std::int64_t t0) {
    const auto deadline = t0 + static_cast<std::int64_t>(ctx.opt.ready_timeout_s * 1e9);
    for (;;) {
        BlockingClient c(ctx.ep, 2000);
        auto r = c.request("GET", path);
        std::int64_t now = now_ns();
        if (r && r->status == 200) {
            return static_cast<double>(now - t0) / 1e6;
        }
        if (reap(s)) {
            return Error::of(Errc::invalid, "the server exited (status " +
                                                std::to_string(s.status) + ") before " + path +
                                                " answered 200; its output ends:\n" + log_tail(s));
        }
        if (now > deadline) {
            return Error::of(Errc::timeout, path + " did not answer 200 within " +
                                                std::to_string(ctx.opt.ready_timeout_s) + " s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

struct ReadyRun {
    double v2_ms = 0;
    double ready_ms = 0;
    double walk_ms = 0;
    double stop_ms = 0;
    double cpu_to_ready_s = 0;
    std::uint64_t repos = 0;
    std::uint64_t pages = 0;
    std::uint64_t duplicates = 0;
};

std::uint64_t count_duplicates(const std::string& names, std::uint64_t& total) {
    std::vector<std::string_view> v;
    std::string_view rest = names;
    while (!rest.empty()) {
        std::size_t nl = rest.find('\n');
        v.push_back(rest.substr(0, nl));
        rest.remove_prefix(nl + 1);
    }
    total = v.size();
    std::sort(v.begin(), v.end());
    return static_cast<std::uint64_t>(v.end() - std::unique(v.begin(), v.end()));
}

Result<void> walk(RunContext& ctx, ReadyRun& out) {
    auto flows = FlowSet::of<CatalogFlow>(1, std::uint64_t{100}, std::string{}, std::size_t{0});
    std::string names;
    names.reserve(1 << 20);
    flows.at<CatalogFlow>(0).keep_names(&names);
    Plan plan(1, 0);
    EngineConfig cfg = engine_config(ctx, false);
    cfg.per_request_ops = true;
    double before = ctx.meter.seconds();
    auto stats = measured_phase(ctx, "measure: catalog walk", flows, plan, cfg);
    if (!stats) {
        return std::move(stats).error();
    }
    out.walk_ms = (ctx.meter.seconds() - before) * 1e3;
    out.pages = stats->ops;
    out.duplicates = count_duplicates(names, out.repos);
    if (out.duplicates > 0) {
        ctx.stats.add_error("catalog walk listed " + std::to_string(out.duplicates) +
                            " repositories more than once");
    }
    return util::Ok{};
}

Result<ReadyRun> ready_once(RunContext& ctx) {
    if (auto busy = connect_to(ctx.ep); busy) {
        return Error::of(Errc::busy, "something already listens on " + ctx.ep.url);
    }
    ReadyRun out;
    std::int64_t t0 = now_ns();
    auto server = spawn(ctx.opt.server_cmd);
    if (!server) {
        return std::move(server).error();
    }
    auto v2 = wait_for(ctx, *server, "/v2/", t0);
    auto ready =
        v2 && !ctx.opt.ready_path.empty() ? wait_for(ctx, *server, ctx.opt.ready_path, t0) : v2;
    int pid = follow_shell(server->pid);
    if (auto s = sample_proc(pid); s && ready) {
        out.cpu_to_ready_s = static_cast<double>(s->ticks) * seconds_per_tick();
    }
    Result<void> walked = util::Ok{};
    if (ready) {
        out.v2_ms = *v2;
        out.ready_ms = *ready;
        ctx.meter.set_server_pid(pid);
        walked = walk(ctx, out);
        ctx.memory = proc_memory(pid);
    }
    out.stop_ms = stop(*server);
    if (!ready) {
        return std::move(ready).error();
    }
    if (!walked) {
        return std::move(walked).error();
    }
    return out;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? not_measured : v[v.size() / 2];
}

} // namespace

Result<void> run_ready(RunContext& ctx) {
    // Orphans of the server command become our children, so stop() can
    // reap them and tell when the whole group is gone.
    (void)::prctl(PR_SET_CHILD_SUBREAPER, 1);
    (void)std::signal(SIGINT, on_signal);
    (void)std::signal(SIGTERM, on_signal);
    std::vector<ReadyRun> runs;
    for (std::uint64_t i = 0; i < ctx.opt.count; ++i) {
        auto r = ready_once(ctx);
        if (!r) {
            return std::move(r).error();
        }
        runs.push_back(*r);
    }
    auto col = [&](double ReadyRun::*m) {
        std::vector<double> v;
        v.reserve(runs.size());
        for (const ReadyRun& r : runs) {
            v.push_back(r.*m);
        }
        return median(v);
    };
    add_extra(ctx, "ready_v2_ms", col(&ReadyRun::v2_ms));
    add_extra(ctx, "ready_ms", col(&ReadyRun::ready_ms));
    add_extra(ctx, "catalog_walk_ms", col(&ReadyRun::walk_ms));
    add_extra(ctx, "stop_ms", col(&ReadyRun::stop_ms));
    add_extra(ctx, "server_cpu_to_ready_s", col(&ReadyRun::cpu_to_ready_s));
    add_extra(ctx, "catalog_repos", static_cast<std::int64_t>(runs.back().repos));
    add_extra(ctx, "catalog_pages", static_cast<std::int64_t>(runs.back().pages));
    add_extra(ctx, "starts", static_cast<std::int64_t>(runs.size()));
    return util::Ok{};
}

} // namespace rp::bench
