// SPDX-License-Identifier: Apache-2.0
// GET /ringport/v1/status: what the process holds right now, for operators
// and for the tests and benchmarks that prove its memory is bounded by what
// is stored, not by what was asked.
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
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
    j.open("memory")
        .num("rss_bytes", rss_bytes())
        .num("heap_in_use_bytes", static_cast<std::uint64_t>(mi.uordblks))
        .close();
    std::string b = j.done();
    http::Response r = empty_response(200);
    r.add("Content-Type", "application/json");
    r.add("Cache-Control", "no-store");
    r.body = std::move(b);
    co_await reply(ex, std::move(r));
}

} // namespace rp::registry
