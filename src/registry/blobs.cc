// SPDX-License-Identifier: Apache-2.0
// Blob GET/HEAD (with Range) and DELETE.
#include "http/range.hh"
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

// A mirrored repository's blob its cache lacks: downloaded from the upstream
// through the store's upload pipeline (hashed as it lands, committed only
// when the digest verifies), then served from disk like any other blob.
reactor::Task<util::Result<void>> Registry::mirror_blob(const Route& r, const mirror::Upstream& u,
                                                        const Digest& d) noexcept {
    auto dl = co_await fetcher_.blob(u, r.name.substr(u.prefix.size() + 1), d.str(),
                                     store_.config().blob_bytes_max);
    if (!dl) {
        co_return std::move(dl).error();
    }
    auto up = co_await store_.start_upload(r.name);
    if (!up) {
        co_return std::move(up).error();
    }
    mirror::DownloadSource src(**dl);
    if (auto got = co_await store_.receive(**up, src); !got) {
        co_await store_.cancel_upload(*up);
        co_return std::move(got).error();
    }
    auto c = co_await store_.commit_upload(*up, d, std::nullopt);
    if (!c && c.error().kind == Errc::digest_mismatch) {
        co_return util::Error::of(Errc::digest_mismatch,
                                  "upstream " + u.url + " sent bytes that do not match " + d.str());
    }
    co_return c;
}

Task<void> Registry::get_blob(http::Exchange& ex, const Route& r) noexcept {
    auto d = Digest::parse(r.ref);
    if (!d) {
        co_await fail(ex, digest_code(d.error()), "invalid digest");
        co_return;
    }
    std::uint64_t size = 0;
    // While the index loads, the tree answers (no request waits for the whole walk).
    auto fd = ready_.is_set() ? co_await store_.open_blob(r.name, *d, &size)
                              : co_await store_.open_blob_on_disk(r.name, *d, &size);
    const mirror::Upstream* u = router_.empty() ? nullptr : router_.owner(r.name);
    if (!fd && fd.error().kind == Errc::not_found && u != nullptr) {
        if (!co_await ready_.wait()) { // the fetch writes: not while the index loads
            co_await fail(ex, Code::unavailable, "stopping before the index finished loading");
            co_return;
        }
        // One upstream fetch however many ask at once; the others wait for it.
        const std::string key = r.name + "@" + d->str();
        if (not_found_.remembered(key, u->not_found_ttl_s)) {
            co_await fail(ex, Code::blob_unknown, d->str());
            co_return;
        }
        mirror::Flights::Ticket t = flights_.join(key);
        util::Result<void> got = util::Ok{};
        if (t.leader) {
            // A flight that landed between this request's miss and its join
            // stored the blob already.
            if (!co_await store_.stat_blob(r.name, *d)) {
                got = co_await mirror_blob(r, *u, *d);
            }
            if (!got && got.error().kind == Errc::not_found) {
                not_found_.remember(key);
            }
            flights_.land(key, t.flight, got);
        } else {
            got = co_await flights_.follow(t);
        }
        if (!got) {
            co_await fail(ex, mirror_code(got.error(), Code::blob_unknown), got.error().detail);
            co_return;
        }
        fd = co_await store_.open_blob(r.name, *d, &size);
    }
    if (!fd) {
        co_await fail(ex, code_for(fd.error(), Code::blob_unknown), d->str());
        co_return;
    }
    http::Response resp = empty_response(200);
    resp.add("Content-Type", "application/octet-stream");
    resp.add("Docker-Content-Digest", d->str());
    resp.add("ETag", "\"" + d->str() + "\"");
    resp.add("Accept-Ranges", "bytes");
    resp.add("Cache-Control", "max-age=31536000");
    http::ByteRange range;
    auto rr = http::parse_range(ex.request().header("Range"), size, range);
    if (rr == http::RangeResult::unsatisfiable) {
        co_await store_.fs().close(*fd);
        http::Response e = error_response(Code::range_invalid, "range not satisfiable");
        e.add("Content-Range", "bytes */" + std::to_string(size));
        co_await reply(ex, std::move(e));
        co_return;
    }
    resp.file_fd = *fd;
    resp.file_offset = 0;
    resp.file_length = size;
    if (rr == http::RangeResult::ok) {
        resp.status = 206;
        resp.file_offset = range.first;
        resp.file_length = range.length();
        resp.add("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                      std::to_string(range.last) + "/" + std::to_string(size));
    }
    co_await reply(ex, std::move(resp));
    co_await store_.fs().close(*fd);
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
    http::Response resp = empty_response(202);
    resp.add("Docker-Content-Digest", d->str());
    co_await reply(ex, std::move(resp));
}

} // namespace rp::registry
