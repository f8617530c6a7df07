// SPDX-License-Identifier: Apache-2.0
#include "observe/notify.hh"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>

#include "net/client.hh"
#include "reactor/ops.hh"
#include "reactor/shard.hh"
#include "reactor/sync.hh"
#include "util/strings.hh"

namespace rp::observe {

using util::Result;

namespace {

constexpr std::uint64_t backoff_cap_ms = 10000;
constexpr std::size_t read_max = 512;             // records per spool read
constexpr std::size_t body_bytes_max = 4U << 20U; // of the events in one envelope
constexpr std::int64_t cursor_save_ms = 1000;

std::int64_t now_ms() { return now_ns() / 1'000'000; }

std::string read_file(int dirfd, const std::string& name, bool& exists) {
    std::string out;
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC);
    exists = fd >= 0;
    if (fd < 0) {
        return out;
    }
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
        out.assign(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

} // namespace

std::string cursor_file(std::string_view endpoint_name) {
    char b[40];
    std::snprintf(
        b, sizeof b, "%016llx.cursor",
        static_cast<unsigned long long>(XXH3_64bits(endpoint_name.data(), endpoint_name.size())));
    return b;
}

Notifier::Notifier(NotifyConfig cfg, std::unique_ptr<Spool> spool, Source src)
    : cfg_(std::move(cfg)), spool_(std::move(spool)), src_(std::move(src)) {}

Notifier::~Notifier() = default;

Result<std::unique_ptr<Notifier>> Notifier::open(NotifyConfig cfg, int rootfd, Source src) {
    auto spool = Spool::open(rootfd, spool_dir, cfg.spool);
    if (!spool) {
        return std::move(spool).error();
    }
    std::unique_ptr<Notifier> n(new Notifier(std::move(cfg), std::move(*spool), std::move(src)));
    const std::uint64_t last = n->spool_->last_seq();
    const std::uint64_t first = n->spool_->first_seq();
    n->stats_.reserve(n->cfg_.endpoints.size());
    n->saved_.reserve(n->cfg_.endpoints.size());
    for (const Endpoint& ep : n->cfg_.endpoints) {
        bool exists = false;
        std::string text = read_file(n->spool_->dirfd(), cursor_file(ep.name), exists);
        std::uint64_t cursor = last; // never seen: new events only
        if (exists) {
            auto nl = text.find('\n');
            auto v = util::parse_u64(std::string_view(text).substr(0, nl));
            // A damaged cursor: everything kept is sent again (at least once).
            cursor = v ? std::min(*v, last) : (first > 0 ? first - 1 : 0);
        }
        auto st = std::make_unique<EndpointStats>();
        st->cursor.store(cursor);
        n->stats_.push_back(std::move(st));
        n->saved_.push_back(exists ? cursor : UINT64_MAX);
    }
    return n;
}

bool Notifier::takes(const Endpoint& ep, std::string_view action,
                     std::string_view media_type) const noexcept {
    if (ep.disabled) {
        return false;
    }
    for (const std::string& a : ep.ignored_actions) {
        if (a == action) {
            return false;
        }
    }
    if (!media_type.empty()) {
        for (const std::string& m : ep.ignored_media_types) {
            if (m == media_type) {
                return false;
            }
        }
    }
    return true;
}

bool Notifier::wanted(Action a, std::string_view media_type) const noexcept {
    const std::string_view action = action_name(a);
    return std::any_of(cfg_.endpoints.begin(), cfg_.endpoints.end(),
                       [&](const Endpoint& ep) { return takes(ep, action, media_type); });
}

std::uint64_t Notifier::record(const Event& e) {
    if (!wanted(e.action, e.media_type)) {
        return 0;
    }
    const std::int64_t t = now_ns();
    // One buffer per thread, reused: the pull path allocates nothing here.
    thread_local std::string json;
    json.clear();
    char id[36];
    util::random_uuid(id);
    append_event_json(json, e, std::string_view(id, sizeof id), t, src_);
    return spool_->append(action_name(e.action), e.media_type, json, t / 1'000'000,
                          e.action != Action::pull);
}

std::uint64_t Notifier::backlog(std::size_t i) const noexcept {
    const std::uint64_t last = spool_->last_seq();
    const std::uint64_t c = stats_[i]->cursor.load(std::memory_order_relaxed);
    return cfg_.endpoints[i].disabled || c >= last ? 0 : last - c;
}

void Notifier::start(reactor::ThreadPool& pool) {
    client_ = std::make_unique<net::Client>();
    if (auto r = client_->init(); !r) {
        client_.reset();
        return;
    }
    for (std::size_t i = 0; i < cfg_.endpoints.size(); ++i) {
        if (!cfg_.endpoints[i].disabled) {
            reactor::spawn(deliver(i, pool));
        }
    }
}

void Notifier::save_cursor(std::size_t i) noexcept {
    const std::uint64_t c = stats_[i]->cursor.load();
    if (saved_[i] == c) {
        return;
    }
    const std::string name = cursor_file(cfg_.endpoints[i].name);
    const std::string tmp = name + ".tmp";
    std::string text = std::to_string(c) + "\n" + cfg_.endpoints[i].name + "\n";
    const int dir = spool_->dirfd();
    int fd = ::openat(dir, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return;
    }
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    // No fsync: a cursor lost in a crash only sends its events again.
    if (ok && ::renameat(dir, tmp.c_str(), dir, name.c_str()) == 0) {
        saved_[i] = c;
    }
}

void Notifier::release_spool() noexcept {
    std::uint64_t min = UINT64_MAX;
    for (std::size_t i = 0; i < cfg_.endpoints.size(); ++i) {
        if (!cfg_.endpoints[i].disabled) {
            min = std::min(min, stats_[i]->cursor.load());
        }
    }
    if (min != UINT64_MAX) {
        spool_->release(min);
    }
}

void Notifier::save_cursors() noexcept {
    for (std::size_t i = 0; i < cfg_.endpoints.size(); ++i) {
        if (!cfg_.endpoints[i].disabled) {
            save_cursor(i);
        }
    }
}

reactor::Task<bool> Notifier::post(std::size_t i, const std::vector<const Record*>& batch) {
    const Endpoint& ep = cfg_.endpoints[i];
    std::vector<std::string_view> events;
    events.reserve(batch.size());
    for (const Record* r : batch) {
        events.emplace_back(r->json);
    }
    net::Request req;
    req.method = "POST";
    req.url = ep.url;
    req.body = envelope(events);
    req.headers.reserve(ep.headers.size() + 1);
    req.headers.push_back("Content-Type: " + std::string(envelope_media_type));
    for (const std::string& h : ep.headers) {
        req.headers.push_back(h);
    }
    req.connect_timeout_ms = ep.timeout_ms;
    req.stall_timeout_ms = std::max<std::uint32_t>(ep.timeout_ms, 1000);
    req.total_timeout_ms = ep.timeout_ms;
    req.body_max = 64 * 1024; // the endpoint's answer is not read
    auto resp = co_await client_->fetch(std::move(req));
    co_return resp && resp->status >= 200 && resp->status < 400;
}

reactor::Task<void> Notifier::deliver(std::size_t i, reactor::ThreadPool& pool) {
    const Endpoint& ep = cfg_.endpoints[i];
    EndpointStats& st = *stats_[i];
    reactor::Shard* shard = reactor::Shard::current();
    Spool::Reader reader = spool_->reader(st.cursor.load());
    std::int64_t saved_at = now_ms();
    std::uint32_t failures = 0;
    std::vector<Record> recs; // reused, with their strings, turn after turn
    std::vector<const Record*> batch;
    // Bounded: each turn reads or waits; a stop ends both.
    for (std::uint64_t turn = 0; turn < (1ULL << 62) && !shard->stopping(); ++turn) {
        std::size_t n = 0;
        if (spool_->written().seen().value >= reader.next_seq()) { // else nothing new to read
            co_await pool.run([&] { n = reader.next(recs, read_max, body_bytes_max); });
        }
        st.lost.store(reader.lost(), std::memory_order_relaxed);
        if (n == 0) {
            if (reader.next_seq() - 1 > st.cursor.load()) {
                st.cursor.store(reader.next_seq() - 1); // skipped past a gap
            }
            if (saved_[i] != st.cursor.load()) {
                co_await pool.run([this, i] {
                    save_cursor(i);
                    release_spool();
                });
                saved_at = now_ms();
            }
            const std::uint64_t seen = reader.next_seq() - 1;
            const reactor::Progress::Seen s = co_await spool_->written().wait_past(seen);
            if (s.closed && s.value <= seen) {
                break; // the spool has stopped
            }
            if (s.value > seen && turn > 0) {
                // Written but not readable yet (a segment being switched): a short pause.
                (void)co_await reactor::sleep_ms(10);
            }
            continue;
        }
        std::size_t at = 0;
        while (at < n && !shard->stopping()) {
            batch.clear();
            std::uint64_t through = 0; // the last record this batch covers (sent or skipped)
            const std::int64_t now = now_ms();
            for (; at < n && batch.size() < ep.batch_events; ++at) {
                const Record& r = recs[at];
                through = r.seq;
                if (!takes(ep, r.action, r.media_type)) {
                    continue;
                }
                if (now - r.time_ms > static_cast<std::int64_t>(ep.max_age_s) * 1000) {
                    st.expired.fetch_add(1, std::memory_order_relaxed);
                    continue;
                }
                batch.push_back(&r);
            }
            // Sent until accepted, the stop, or every event in it is too old.
            for (int attempt = 0; !batch.empty() && attempt < (1 << 30); ++attempt) {
                if (co_await post(i, batch)) {
                    const std::size_t sent = batch.size();
                    batch.clear();
                    st.delivered.fetch_add(sent, std::memory_order_relaxed);
                    st.posts.fetch_add(1, std::memory_order_relaxed);
                    st.last_success_ms.store(now_ms(), std::memory_order_relaxed);
                    st.failing.store(false, std::memory_order_relaxed);
                    failures = 0;
                    break;
                }
                st.failures.fetch_add(1, std::memory_order_relaxed);
                st.last_failure_ms.store(now_ms(), std::memory_order_relaxed);
                st.failing.store(true, std::memory_order_relaxed);
                ++failures;
                if (shard->stopping()) {
                    co_return; // the cursor stays before this batch: sent again at the next start
                }
                std::uint64_t wait_ms = 50;
                if (failures >= ep.threshold) {
                    const std::uint32_t k = std::min<std::uint32_t>(failures - ep.threshold, 16);
                    wait_ms = std::clamp<std::uint64_t>(
                        static_cast<std::uint64_t>(ep.backoff_ms) << k, 50, backoff_cap_ms);
                }
                (void)co_await reactor::sleep_ms(wait_ms);
                const std::int64_t later = now_ms();
                const auto too_old = [&](const Record* r) {
                    return later - r->time_ms > static_cast<std::int64_t>(ep.max_age_s) * 1000;
                };
                const auto old_n =
                    static_cast<std::uint64_t>(std::count_if(batch.begin(), batch.end(), too_old));
                if (old_n > 0) {
                    st.expired.fetch_add(old_n, std::memory_order_relaxed);
                    batch.erase(std::remove_if(batch.begin(), batch.end(), too_old), batch.end());
                }
            }
            if (!batch.empty()) {
                co_return; // stopping, not accepted: sent again at the next start
            }
            st.cursor.store(through); // accepted, or nothing in it to send
        }
        if (now_ms() - saved_at >= cursor_save_ms) {
            co_await pool.run([this, i] {
                save_cursor(i);
                release_spool();
            });
            saved_at = now_ms();
        }
    }
}

} // namespace rp::observe
