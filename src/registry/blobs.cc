// SPDX-License-Identifier: Apache-2.0
// Blob GET/HEAD (with Range) and DELETE.
#include "http/range.hh"
#include "registry/registry.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;

namespace {

Code digest_code(const util::Error& e) noexcept {
    (void)e;
    return Code::digest_invalid;
}

} // namespace

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
