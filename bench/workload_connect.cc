// SPDX-License-Identifier: Apache-2.0
// connect: one operation is one new connection. TCP connect, for https://
// a full TLS handshake (the certificate verified, no resumption: what a
// fresh client pays), GET /v2/ with Connection: close, the response read to
// its end, close. --concurrency threads each run this loop, blocking; with
// --server-pid the report's server CPU per operation is the server's cost
// of a connection (and of its handshake).
#include <thread>

#include "workloads.hh"

namespace rp::bench {

using util::Errc;
using util::Error;
using util::Result;

namespace {

Result<int> one_connection(const Endpoint& ep, int timeout_ms) {
    auto c = open_connection(ep, timeout_ms);
    if (!c) {
        return std::move(c).error();
    }
    std::string req = "GET /v2/ HTTP/1.1\r\nHost: ";
    req.append(ep.authority).append("\r\nConnection: close\r\n").append(ep.extra_headers);
    req.append("\r\n");
    if (auto s = c->send_all(req); !s) {
        return std::move(s).error();
    }
    ResponseReader reader;
    reader.reset(false);
    char buf[4096];
    for (int i = 0; i < 1000 && !reader.finished(); ++i) {
        auto n = c->recv(buf, sizeof buf);
        if (!n) {
            return std::move(n).error();
        }
        if (*n == 0) {
            reader.on_eof();
            break;
        }
        std::string_view in(buf, *n);
        while (!in.empty() && !reader.finished()) {
            (void)reader.feed(in);
        }
    }
    if (reader.state() != ResponseReader::State::done) {
        return Error::of(Errc::closed, "GET /v2/: no complete response");
    }
    return reader.head().status;
}

} // namespace

Result<void> run_connect(RunContext& ctx) {
    const Options& o = ctx.opt;
    const int timeout_ms = static_cast<int>(o.timeout_s * 1000);
    // Untimed: the server answers at all (a refused handshake ends it here).
    if (auto first = one_connection(ctx.ep, timeout_ms); !first) {
        return std::move(first).error();
    }
    Plan plan(o.count, o.duration_s);
    std::vector<Stats> per(o.concurrency);
    std::vector<std::thread> threads;
    LiveCounters live;
    ctx.meter.start();
    plan.start(now_ns());
    for (std::size_t t = 0; t < o.concurrency; ++t) {
        threads.emplace_back([&, t] {
            Stats& st = per[t];
            std::uint64_t op = 0;
            // Bounded by the plan: a count, or a deadline.
            while (plan.take(op, now_ns())) {
                std::int64_t t0 = now_ns();
                auto status = one_connection(ctx.ep, timeout_ms);
                ++st.requests;
                if (!status) {
                    st.add_error("connection " + std::to_string(op) + ": " + status.error().detail);
                    continue;
                }
                if (*status != 200 && *status != 401) {
                    st.add_error("GET /v2/: status " + std::to_string(*status));
                    continue;
                }
                st.record_latency(t0, now_ns());
                ++st.ops;
                live.ops.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    ctx.meter.stop();
    for (const Stats& st : per) {
        ctx.stats.merge(st);
    }
    add_extra(ctx, "tls", ctx.ep.tls ? "full handshake, verified, no resumption" : "none");
    return util::Ok{};
}

} // namespace rp::bench
