// SPDX-License-Identifier: Apache-2.0
// GET /ringport/v1/status: what the process holds right now, for operators
// and for the tests and benchmarks that prove its memory is bounded by what
// is stored, not by what was asked.
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <string>

#include "registry/json.hh"
#include "registry/registry.hh"
#include "util/log.hh"

namespace rp::registry {

namespace {

// Resident set size from /proc/self/statm (pages), or 0 when unreadable.
std::uint64_t rss_bytes() noexcept {
    std::FILE* f = std::fopen("/proc/self/statm", "re");
    if (f == nullptr) {
        return 0;
    }
    unsigned long long size = 0;
    unsigned long long resident = 0;
    int n = std::fscanf(f, "%llu %llu", &size, &resident);
    (void)std::fclose(f);
    long page = ::sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? resident * static_cast<std::uint64_t>(page) : 0;
}

} // namespace

reactor::Task<void> Registry::status(http::Exchange& ex) noexcept {
    storage::Index& idx = store_.index();
    storage::Index::Counts c = idx.counts();
    storage::Index::Footprint f = idx.footprint();
    struct mallinfo2 mi = ::mallinfo2();
    Json j;
    j.str("version", cfg_.version)
        .num("uptime_s", now_s() - started_at_)
        .num("shard_count",
             static_cast<std::uint64_t>(runtime_ != nullptr ? runtime_->shard_count() : 0))
        .num("connections", connections_ ? connections_() : std::uint64_t{0});
    j.open("index")
        .boolean("ready", ready_.is_set())
        .num("repositories", c.repos)
        .num("tags", c.tags)
        .num("manifests", c.manifests)
        .num("blob_links", c.layers)
        .num("repository_states", f.repo_states)
        .num("digests", f.digests)
        .num("digest_slots", f.digest_slots)
        .close();
    j.open("uploads")
        .num("sessions", store_.upload_count())
        .num("sessions_max", store_.config().uploads_max)
        .close();
    j.open("manifest_cache")
        .num("bytes", store_.cache_bytes_used())
        .num("bytes_max", store_.config().manifest_cache_bytes_max)
        .close();
    j.open("log").num("dropped_lines", util::log_dropped_total()).close();
    if (runtime_ != nullptr) {
        // Stalls of whole shards (Shard::turns): cumulative counts by length.
        reactor::Shard::Turns t = runtime_->turns();
        j.open("shards");
        for (std::size_t i = 0; i < t.from.size(); ++i) {
            j.num("turns_from_" + std::to_string(reactor::Shard::turn_bounds_us[i] / 1000) + "ms",
                  t.from[i]);
        }
        j.num("longest_turn_us", t.longest_us).close();
    }
    // Each webhook endpoint's delivery (the web UI's status page; /metrics
    // has the same as ringport_webhook_*).
    j.open_array("webhooks");
    if (notifier_ != nullptr) {
        const std::vector<observe::Endpoint>& eps = notifier_->endpoints();
        for (std::size_t i = 0; i < eps.size(); ++i) {
            const observe::EndpointStats& st = notifier_->stats(i);
            j.open()
                .str("name", eps[i].name)
                .boolean("disabled", eps[i].disabled)
                .num("backlog", notifier_->backlog(i))
                .num("delivered", st.delivered.load())
                .num("failures", st.failures.load())
                .boolean("failing", st.failing.load())
                .num("expired", st.expired.load())
                .num("lost", st.lost.load())
                .close();
        }
    }
    j.close_array();
    j.open("memory")
        .num("rss_bytes", rss_bytes())
        .num("heap_in_use_bytes", static_cast<std::uint64_t>(mi.uordblks))
        .close();
    co_await reply(ex, json_report(j.done()));
}

// GET /ringport/v1/mirrors: each mirror's cache and upstream, as /metrics
// has them, for a UI.
reactor::Task<void> Registry::mirrors_endpoint(http::Exchange& ex) noexcept {
    Json j;
    j.open_array("mirrors");
    for (const mirror::Upstream& u : router_.upstreams()) {
        const MirrorStats& st = stats(u);
        const std::int64_t cache = st.cache_bytes.load();
        const std::int64_t remaining = fetcher_.limits(u).remaining;
        j.open()
            .str("prefix", u.prefix)
            .str("url", u.url)
            .boolean("default", u.is_default)
            .boolean("upstream_down", breaker_.is_open(u))
            .num("hits", st.all_hits())
            .num("misses", st.all_misses())
            .num("hit_ratio_percent", st.hit_ratio_percent())
            .num("manifest_hits", st.hits[MirrorStats::manifest].load())
            .num("manifest_misses", st.misses[MirrorStats::manifest].load())
            .num("blob_hits", st.hits[MirrorStats::blob].load())
            .num("blob_misses", st.misses[MirrorStats::blob].load())
            .num("coalesced", st.coalesced[0].load() + st.coalesced[1].load())
            .num("stale_serves", st.stale.load())
            .num("fetches_in_flight", st.in_flight.load())
            .num("upstream_bytes", st.upstream_bytes.load())
            .num("served_bytes", st.served_bytes.load())
            .num("cache_bytes", cache < 0 ? std::int64_t{-1} : cache)
            .num("cache_bytes_max", u.cache_bytes_max)
            .num("evictions", st.evictions.load())
            .num("ratelimit_remaining", remaining)
            .close();
    }
    j.close_array();
    co_await reply(ex, json_report(j.done()));
}

} // namespace rp::registry
