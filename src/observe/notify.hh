// SPDX-License-Identifier: Apache-2.0
#pragma once

// Webhooks: Distribution's `notifications`, delivered from the spool. Every
// event is spooled once (spool.hh), and each endpoint reads the spool in
// order from its own cursor: at least once, in order per endpoint, each
// event with its stable id. A failed POST is retried, after `threshold`
// failures with a back-off from `backoff` doubling up to 10 s, until the
// endpoint accepts (any 2xx or 3xx, as Distribution) or the event is older
// than max_age_s. Cursors are saved about once a second and at a stop; a
// crash re-sends at most that second's events.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "observe/event.hh"
#include "observe/spool.hh"
#include "reactor/task.hh"
#include "util/result.hh"

namespace rp::reactor {
class ThreadPool;
}
namespace rp::net {
class Client;
}

namespace rp::observe {

struct Endpoint {
    std::string name;
    std::string url;
    std::vector<std::string> headers; // "Name: value"
    std::uint32_t timeout_ms = 5000;
    std::uint32_t threshold = 3;     // failures retried at once before the back-off
    std::uint32_t backoff_ms = 1000; // the first back-off (doubling, at most 10 s)
    std::uint32_t batch_events = 1;  // events per envelope (Distribution sends 1)
    std::uint64_t max_age_s = 86400; // an event this old is dropped instead of retried
    std::vector<std::string> ignored_media_types;
    std::vector<std::string> ignored_actions;
    bool disabled = false;
};

struct NotifyConfig {
    std::vector<Endpoint> endpoints;
    SpoolConfig spool;
    bool include_references = false;
};

// One endpoint's counters, from any thread.
struct EndpointStats {
    std::atomic<std::uint64_t> cursor{0};    // the last sequence number accepted or skipped
    std::atomic<std::uint64_t> delivered{0}; // events accepted
    std::atomic<std::uint64_t> posts{0};     // POSTs accepted
    std::atomic<std::uint64_t> failures{0};  // POSTs that failed (status or transport)
    std::atomic<std::uint64_t> expired{0};   // events dropped past max_age_s
    std::atomic<std::uint64_t> lost{0};      // events the spool's bound removed unsent
    std::atomic<std::int64_t> last_success_ms{0};
    std::atomic<std::int64_t> last_failure_ms{0};
    std::atomic<bool> failing{false}; // the last POST failed
};

class Notifier {
  public:
    // Blocking, at startup: opens the spool in `rootfd` and reads the
    // endpoints' cursors. An endpoint never seen before starts at the
    // spool's end (new events only); one whose cursor file is damaged
    // starts at the oldest event kept.
    static util::Result<std::unique_ptr<Notifier>> open(NotifyConfig cfg, int rootfd, Source src);
    ~Notifier();
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    // Whether any enabled endpoint takes events of this kind (the rest are
    // not spooled at all).
    bool wanted(Action a, std::string_view media_type) const noexcept;
    bool include_references() const noexcept { return cfg_.include_references; }
    // Any thread: spools the event (unless no endpoint wants it). A push,
    // mount or delete event is numbered now: its sequence number, to await
    // with durable(). A pull is queued on its thread and numbered by the
    // spool's writer: 0, as for an event not spooled.
    std::uint64_t record(const Event& e);
    // Resolves once record `seq` is on disk.
    reactor::Progress::WaitAwaiter durable(std::uint64_t seq) noexcept {
        return spool_->synced().wait_past(seq == 0 ? 0 : seq - 1);
    }

    // On the calling shard, until it stops: one delivery flow per enabled
    // endpoint, with a client of this shard's; blocking file work goes to
    // `pool`.
    void start(reactor::ThreadPool& pool);
    // The spool's writer thread (Runtime::spawn_thread).
    void run_writer(const std::atomic<bool>& stop) noexcept { spool_->run(stop); }
    // Blocking, after the runtime stopped: the cursors, saved.
    void save_cursors() noexcept;

    const std::vector<Endpoint>& endpoints() const noexcept { return cfg_.endpoints; }
    const EndpointStats& stats(std::size_t i) const noexcept { return *stats_[i]; }
    // Events spooled and not yet accepted or skipped by endpoint `i`.
    std::uint64_t backlog(std::size_t i) const noexcept;
    const Spool& spool() const noexcept { return *spool_; }

  private:
    Notifier(NotifyConfig cfg, std::unique_ptr<Spool> spool, Source src);
    reactor::Task<void> deliver(std::size_t i, reactor::ThreadPool& pool);
    reactor::Task<bool> post(std::size_t i, const std::vector<const Record*>& batch);
    bool takes(const Endpoint& ep, std::string_view action,
               std::string_view media_type) const noexcept;
    void save_cursor(std::size_t i) noexcept; // blocking
    void release_spool() noexcept;            // blocking

    NotifyConfig cfg_;
    std::unique_ptr<Spool> spool_;
    Source src_;
    std::vector<std::unique_ptr<EndpointStats>> stats_;
    std::vector<std::uint64_t> saved_; // the cursor on disk, per endpoint
    std::unique_ptr<net::Client> client_;
};

// The cursor file's name for an endpoint.
std::string cursor_file(std::string_view endpoint_name);

} // namespace rp::observe
