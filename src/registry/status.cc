// SPDX-License-Identifier: Apache-2.0
// GET /ringport/v1/status: what the process holds right now, for operators
// and for the tests and benchmarks that prove its memory is bounded by what
// is stored, not by what was asked.
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <string>

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

void field(std::string& out, const char* name, std::uint64_t v, bool last = false) {
    out += '"';
    out += name;
    out += "\":";
    out += std::to_string(v);
    if (!last) {
        out += ',';
    }
}

} // namespace

reactor::Task<void> Registry::status(http::Exchange& ex) noexcept {
    storage::Index& idx = store_.index();
    storage::Index::Counts c = idx.counts();
    storage::Index::Footprint f = idx.footprint();
    struct mallinfo2 mi = ::mallinfo2();
    std::string b = "{\"index\":{\"ready\":";
    b += ready_.is_set() ? "true," : "false,";
    field(b, "repositories", c.repos);
    field(b, "tags", c.tags);
    field(b, "manifests", c.manifests);
    field(b, "blob_links", c.layers);
    field(b, "repository_states", f.repo_states);
    field(b, "digests", f.digests);
    field(b, "digest_slots", f.digest_slots, true);
    b += "},\"uploads\":{";
    field(b, "sessions", store_.upload_count());
    field(b, "sessions_max", store_.config().uploads_max, true);
    b += "},\"manifest_cache\":{";
    field(b, "bytes", store_.cache_bytes_used());
    field(b, "bytes_max", store_.config().manifest_cache_bytes_max, true);
    b += "},\"log\":{";
    field(b, "dropped_lines", util::log_dropped_total(), true);
    if (runtime_ != nullptr) {
        // Stalls of whole shards (Shard::turns): cumulative counts by length.
        reactor::Shard::Turns t = runtime_->turns();
        b += "},\"shards\":{";
        for (std::size_t i = 0; i < t.from.size(); ++i) {
            std::string name =
                "turns_from_" + std::to_string(reactor::Shard::turn_bounds_us[i] / 1000) + "ms";
            field(b, name.c_str(), t.from[i]);
        }
        field(b, "longest_turn_us", t.longest_us, true);
    }
    b += "},\"memory\":{";
    field(b, "rss_bytes", rss_bytes());
    field(b, "heap_in_use_bytes", mi.uordblks, true);
    b += "}}\n";
    http::Response r = empty_response(200);
    r.add("Content-Type", "application/json");
    r.add("Cache-Control", "no-store");
    r.body = std::move(b);
    co_await reply(ex, std::move(r));
}

} // namespace rp::registry
