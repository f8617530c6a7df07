// SPDX-License-Identifier: Apache-2.0
// Blob GET/HEAD (with Range) and DELETE.
#include "http/range.hh"
#include "mirror/blob_fetch.hh"
#include "registry/registry.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;
using util::Errc;

namespace {

Code digest_code(const util::Error& e) noexcept {
    (void)e;
    return Code::digest_invalid;
}

} // namespace

// The last bytes of a blob streamed while it is fetched are held back until
// its digest verifies: a client never receives a whole blob that is wrong
// (on a mismatch its response is cut short).
constexpr std::uint64_t holdback_bytes = 64u << 10;

namespace {

// A flight's data file as a response body: sent as it lands, the held-back
// tail once the blob is committed, cut short when the fetch fails.
class FlightFile final : public http::GrowingFile {
  public:
    explicit FlightFile(std::shared_ptr<mirror::Flights::Flight> fl) noexcept
        : fl_(std::move(fl)) {}
    Task<util::Result<std::uint64_t>> ready_past(std::uint64_t offset) noexcept override {
        const std::uint64_t size = fl_->size;
        const std::uint64_t streamable = size > holdback_bytes ? size - holdback_bytes : 0;
        // Bounded: each turn waits for the value to grow past what it saw.
        for (std::uint64_t seen = 0;;) {
            const reactor::Progress::Seen s = co_await fl_->bytes.wait_past(seen);
            if (s.closed) {
                if (!fl_->landed.is_set()) { // closed early: the server is cutting
                    co_return util::Error::of(Errc::stopped, "stopping");
                }
                if (!fl_->result) {
                    co_return fl_->result.error();
                }
                co_return size;
            }
            const std::uint64_t upto = s.value < streamable ? s.value : streamable;
            if (upto > offset) {
                co_return upto;
            }
            seen = s.value;
        }
    }

  private:
    std::shared_ptr<mirror::Flights::Flight> fl_;
};

} // namespace

// A blob already stored for another repository has the same bytes, whatever
// the upstream: it is linked, not fetched again (base layers are shared by
// most images). Not for an upstream with credentials: a private repository's
// blob must come through the upstream's own check of the repository asked.
reactor::Task<bool> Registry::mount_stored(const mirror::Upstream& u, const std::string& repo,
                                           const Digest& d) noexcept {
    if (u.has_credentials()) {
        co_return false;
    }
    auto mounted = co_await store_.mount_blob(repo, d, std::nullopt);
    co_return mounted ? *mounted : false; // an error to mount: fetched instead
}

// Joins the single flight for a blob the cache lacks; the leader (counted a
// miss) starts the fetch. Pulls and pre-warm alike.
mirror::Flights::Ticket Registry::join_blob_fetch(const mirror::Upstream& u,
                                                  const std::string& repo, const Digest& d,
                                                  std::string key) noexcept {
    mirror::Flights::Ticket t = flights_.join(key);
    if (t.leader) {
        stats(u).misses[MirrorStats::blob].fetch_add(1, std::memory_order_relaxed);
        stats(u).in_flight.fetch_add(1, std::memory_order_relaxed);
        reactor::spawn(fetch_into_cache(repo, &u, d, std::move(key), t.flight));
    }
    return t;
}

// A mirrored repository's blob its cache lacks: fetched on this shard by a
// flow of its own, which finishes and commits even when every client has
// gone. Lands the flight for everyone reading it.
Task<void> Registry::fetch_into_cache(std::string repo, const mirror::Upstream* u, Digest d,
                                      std::string key,
                                      std::shared_ptr<mirror::Flights::Flight> fl) noexcept {
    util::Result<void> got = util::Ok{};
    // A flight that landed between the request's miss and its join stored
    // the blob already.
    if (!co_await store_.stat_blob(repo, d) && !co_await mount_stored(*u, repo, d)) {
        std::string name = repo.substr(u->prefix.size() + 1);
        std::uint64_t received = 0;
        got = co_await mirror::fetch_blob(fetcher_, store_, *u, std::move(repo), std::move(name), d,
                                          *fl, &received);
        stats(*u).upstream_bytes.fetch_add(received, std::memory_order_relaxed);
    }
    stats(*u).in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (!got && got.error().kind == Errc::not_found) {
        not_found_.remember(key);
    } else if (!got && got.error().kind == Errc::digest_mismatch) {
        wrong_bytes_.remember(key);
    }
    flights_.land(key, fl, std::move(got));
}

Task<void> Registry::get_blob(http::Exchange& ex, const Route& r) noexcept {
    auto d = Digest::parse(r.ref);
    if (!d) {
        co_await fail(ex, digest_code(d.error()), "invalid digest");
        co_return;
    }
    if (ex.request().method == "HEAD" && ready_.is_set()) {
        co_await store_.note_use(r.name, *d); // a push asks before its manifest needs the blob
    }
    std::uint64_t size = 0;
    // While the index loads, the tree answers (no request waits for the whole walk).
    auto fd = ready_.is_set() ? co_await store_.open_blob(r.name, *d, &size)
                              : co_await store_.open_blob_on_disk(r.name, *d, &size);
    const mirror::Upstream* u = router_.empty() ? nullptr : router_.owner(r.name);
    std::shared_ptr<mirror::Flights::Flight> streaming;
    if (fd && u != nullptr) {
        stats(*u).hits[MirrorStats::blob].fetch_add(1, std::memory_order_relaxed);
    }
    if (!fd && fd.error().kind == Errc::not_found && u != nullptr) {
        if (!co_await ready_.wait()) { // the fetch writes: not while the index loads
            co_await fail(ex, Code::unavailable, "stopping before the index finished loading");
            co_return;
        }
        // One upstream fetch however many ask at once; everyone reads it as
        // it lands.
        std::string key = r.name + "@" + d->str();
        if (not_found_.remembered(key, u->not_found_ttl_s)) {
            stats(*u).not_found_hits[MirrorStats::blob].fetch_add(1, std::memory_order_relaxed);
            co_await fail(ex, Code::blob_unknown, d->str());
            co_return;
        }
        if (wrong_bytes_.remembered(key, u->not_found_ttl_s)) {
            co_await fail(ex, Code::upstream_failed,
                          "upstream " + u->url + " sent bytes that do not match " + d->str());
            co_return;
        }
        mirror::Flights::Ticket t = join_blob_fetch(*u, r.name, *d, std::move(key));
        if (!t.leader) {
            stats(*u).coalesced[MirrorStats::blob].fetch_add(1, std::memory_order_relaxed);
        }
        if (!co_await t.flight->headed.wait()) {
            co_await fail(ex, Code::unavailable, "stopping");
            co_return;
        }
        if (!t.flight->landed.is_set() && t.flight->data.valid() && t.flight->size > 0) {
            streaming = t.flight;
            fd = streaming->data.get();
            size = streaming->size;
        } else {
            if (auto got = co_await flights_.follow(t); !got) {
                co_await fail(ex, mirror_code(got.error(), Code::blob_unknown), got.error().detail);
                co_return;
            }
            fd = co_await store_.open_blob(r.name, *d, &size);
        }
    }
    if (!fd) {
        co_await fail(ex, code_for(fd.error(), Code::blob_unknown), d->str());
        co_return;
    }
    // The flight owns a streamed blob's descriptor; this request owns the others.
    const int owned = streaming ? -1 : *fd;
    FlightFile growing(streaming);
    http::Response resp = empty_response(200);
    resp.add("Content-Type", "application/octet-stream");
    resp.add("Docker-Content-Digest", d->str());
    resp.add("ETag", "\"" + d->str() + "\"");
    resp.add("Accept-Ranges", "bytes");
    resp.add("Cache-Control", "max-age=31536000");
    http::ByteRange range;
    auto rr = http::parse_range(ex.request().header("Range"), size, range);
    if (rr == http::RangeResult::unsatisfiable) {
        if (owned >= 0) {
            co_await store_.fs().close(owned);
        }
        http::Response e = error_response(Code::range_invalid, "range not satisfiable");
        e.add("Content-Range", "bytes */" + std::to_string(size));
        co_await reply(ex, std::move(e));
        co_return;
    }
    resp.file_fd = *fd;
    resp.file_offset = 0;
    resp.file_length = size;
    if (streaming) {
        resp.growing = &growing;
    }
    if (rr == http::RangeResult::ok) {
        resp.status = 206;
        resp.file_offset = range.first;
        resp.file_length = range.length();
        resp.add("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                      std::to_string(range.last) + "/" + std::to_string(size));
    }
    if (u != nullptr && ex.request().method != "HEAD") {
        stats(*u).served_bytes.fetch_add(resp.file_length, std::memory_order_relaxed);
    }
    if (notifier_ != nullptr) {
        on_blob_pull(ex, r.name, *d, size);
    }
    co_await reply(ex, std::move(resp));
    if (owned >= 0) {
        co_await store_.fs().close(owned);
    }
}

Task<void> Registry::delete_blob(http::Exchange& ex, const Route& r) noexcept {
    if (!cfg_.delete_enabled) {
        co_await fail(ex, Code::unsupported, "deletes are disabled");
        co_return;
    }
    auto d = Digest::parse(r.ref);
    if (!d) {
        co_await fail(ex, Code::digest_invalid, "invalid digest");
        co_return;
    }
    auto del = co_await store_.delete_blob(r.name, *d);
    if (!del) {
        co_await fail(ex, code_for(del.error(), Code::blob_unknown), d->str());
        co_return;
    }
    if (observed()) {
        co_await publish(on_delete(Origin{&ex, {}}, r.name, {}, d->str(), "blob"));
    }
    http::Response resp = empty_response(202);
    resp.add("Docker-Content-Digest", d->str());
    co_await reply(ex, std::move(resp));
}

} // namespace rp::registry
