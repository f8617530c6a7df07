// SPDX-License-Identifier: Apache-2.0
// Blob uploads: POST (session, monolithic, mount), PATCH, PUT, GET, DELETE.
#include "http/range.hh"
#include "registry/registry.hh"
#include "storage/names.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;
using storage::UploadPtr;
using util::Errc;

namespace {

http::Response upload_accepted(int status, const storage::Upload& u) {
    http::Response r = empty_response(status);
    r.add("Location", upload_location(u.repo, u.uuid));
    r.add("Range", upload_range(u.offset.load()));
    r.add("Docker-Upload-UUID", u.uuid);
    return r;
}

http::Response blob_created(std::string_view name, const Digest& d) {
    http::Response r = empty_response(201);
    r.add("Location", "/v2/" + std::string(name) + "/blobs/" + d.str());
    r.add("Docker-Content-Digest", d.str());
    return r;
}

// A request body as the storage layer's byte source.
class BodySource final : public storage::ByteSource {
  public:
    explicit BodySource(http::Exchange& ex) noexcept : ex_(ex) {}
    reactor::Task<util::Result<std::size_t>> read(char* dst, std::size_t cap) noexcept override {
        return ex_.read_body_into(dst, cap);
    }

  private:
    http::Exchange& ex_;
};

Code acquire_code(const util::Error& e) noexcept {
    if (e.kind == Errc::busy) {
        return Code::blob_upload_invalid;
    }
    return code_for(e, Code::blob_upload_unknown);
}

} // namespace

Task<util::Result<void>> Registry::stream_body(http::Exchange& ex, storage::Upload& u) noexcept {
    const http::Request& req = ex.request();
    if (req.content_length &&
        u.offset.load() + *req.content_length > store_.config().blob_bytes_max) {
        co_return util::Error::of(Errc::too_large, "blob exceeds the configured maximum size");
    }
    BodySource src(ex);
    co_return co_await store_.receive(u, src);
}

// A body that could not be stored. A client that went away keeps its
// session (the bytes that arrived are hashed and kept); anything else ends it.
Task<void> Registry::upload_failed(http::Exchange& ex, UploadPtr u, util::Error e) noexcept {
    if (e.kind == Errc::closed || e.kind == Errc::timeout) {
        store_.release_upload(u);
        co_return;
    }
    if (e.kind == Errc::invalid) {
        store_.release_upload(u);
        co_await fail(ex, Code::blob_upload_invalid, e.detail);
        co_return;
    }
    co_await store_.cancel_upload(u);
    co_await fail(ex, code_for(e, Code::blob_upload_unknown), e.detail);
}

Task<void> Registry::start_upload(http::Exchange& ex, const Route& r) noexcept {
    const http::Request& req = ex.request();
    if (req.query_param("mount")) {
        co_await mount_or_start(ex, r);
        co_return;
    }
    if (auto dq = req.query_param("digest")) {
        auto d = Digest::parse(*dq);
        if (!d) {
            co_await fail(ex, Code::digest_invalid, "invalid digest");
            co_return;
        }
        co_await monolithic_upload(ex, r, std::move(*d));
        co_return;
    }
    auto u = co_await store_.start_upload(r.name);
    if (!u) {
        co_await fail(ex, code_for(u.error(), Code::blob_upload_invalid), u.error().detail);
        co_return;
    }
    store_.release_upload(*u);
    co_await reply(ex, upload_accepted(202, **u));
}

Task<void> Registry::monolithic_upload(http::Exchange& ex, const Route& r, Digest d) noexcept {
    auto u = co_await store_.start_upload(r.name);
    if (!u) {
        co_await fail(ex, code_for(u.error(), Code::blob_upload_invalid), u.error().detail);
        co_return;
    }
    auto s = co_await stream_body(ex, **u);
    if (!s) {
        // Nobody knows this session's id: it cannot be continued, so it ends.
        co_await store_.cancel_upload(*u);
        util::Error e = std::move(s).error();
        if (e.kind != Errc::closed && e.kind != Errc::timeout) {
            Code c = e.kind == Errc::invalid ? Code::blob_upload_invalid
                                             : code_for(e, Code::blob_upload_invalid);
            co_await fail(ex, c, e.detail);
        }
        co_return;
    }
    const std::uint64_t size = (*u)->offset.load();
    auto c = co_await store_.commit_upload(*u, d, std::nullopt);
    if (!c) {
        co_await fail(ex, code_for(c.error(), Code::blob_upload_invalid), c.error().detail);
        co_return;
    }
    if (observed()) {
        co_await on_blob_push(ex, r.name, d, size);
    }
    co_await reply(ex, blob_created(r.name, d));
}

Task<void> Registry::mount_or_start(http::Exchange& ex, const Route& r) noexcept {
    const http::Request& req = ex.request();
    auto d = Digest::parse(*req.query_param("mount"));
    auto from = req.query_param("from");
    bool usable = d && (!from || storage::valid_repo_name(*from));
    // A source the caller may not pull is never looked at: the mount is an
    // upload, so whether the blob exists there stays unknown to them.
    const std::function<bool(std::string_view)> may_pull = pull_filter(ex);
    if (from && !may_pull(*from)) {
        usable = false;
    }
    if (!from && !cfg_.mount_without_from) {
        usable = false;
    }
    std::function<bool(std::string_view)> readable;
    if (!from && !pulls_everything(ex)) {
        readable = may_pull;
    }
    if (usable) {
        auto m = co_await store_.mount_blob(r.name, *d, from, std::move(readable));
        if (m && *m) {
            if (observed()) {
                co_await on_blob_mount(ex, r.name, *d, from);
            }
            co_await reply(ex, blob_created(r.name, *d));
            co_return;
        }
    }
    // Not mountable: an ordinary upload session, as the spec says.
    auto u = co_await store_.start_upload(r.name);
    if (!u) {
        co_await fail(ex, code_for(u.error(), Code::blob_upload_invalid), u.error().detail);
        co_return;
    }
    store_.release_upload(*u);
    co_await reply(ex, upload_accepted(202, **u));
}

Task<void> Registry::patch_upload(http::Exchange& ex, const Route& r) noexcept {
    if (!storage::layout_valid_upload_id(r.ref)) {
        co_await fail(ex, Code::blob_upload_unknown, "invalid upload id");
        co_return;
    }
    auto u = co_await store_.acquire_upload(r.name, r.ref);
    if (!u) {
        co_await fail(ex, acquire_code(u.error()), u.error().detail);
        co_return;
    }
    const http::Request& req = ex.request();
    std::string_view cr = req.header("Content-Range");
    if (!cr.empty()) {
        auto range = http::parse_content_range(cr);
        bool len_ok = !range || !req.content_length || *req.content_length == range->length();
        if (!range || range->first != (*u)->offset.load() || !len_ok) {
            http::Response e =
                error_response(Code::range_invalid, "chunk does not continue the upload");
            e.add("Location", upload_location(r.name, r.ref));
            e.add("Range", upload_range((*u)->offset.load()));
            e.add("Docker-Upload-UUID", r.ref);
            store_.release_upload(*u);
            co_await reply(ex, std::move(e));
            co_return;
        }
    }
    auto s = co_await stream_body(ex, **u);
    if (!s) {
        co_await upload_failed(ex, *u, std::move(s).error());
        co_return;
    }
    store_.release_upload(*u);
    co_await reply(ex, upload_accepted(202, **u));
}

Task<void> Registry::put_upload(http::Exchange& ex, const Route& r) noexcept {
    const http::Request& req = ex.request();
    if (!storage::layout_valid_upload_id(r.ref)) {
        co_await fail(ex, Code::blob_upload_unknown, "invalid upload id");
        co_return;
    }
    auto dq = req.query_param("digest");
    auto d = dq ? Digest::parse(*dq) : util::Result<Digest>(util::Error::of(Errc::invalid));
    if (!d) {
        co_await fail(ex, Code::digest_invalid, dq ? "invalid digest" : "digest parameter missing");
        co_return;
    }
    auto u = co_await store_.acquire_upload(r.name, r.ref);
    if (!u) {
        co_await fail(ex, acquire_code(u.error()), u.error().detail);
        co_return;
    }
    std::string_view cr = req.header("Content-Range");
    if (!cr.empty() && req.has_body()) {
        auto range = http::parse_content_range(cr);
        if (!range || range->first != (*u)->offset.load()) {
            store_.release_upload(*u);
            co_await fail(ex, Code::range_invalid, "chunk does not continue the upload");
            co_return;
        }
    }
    auto s = co_await stream_body(ex, **u);
    if (!s) {
        co_await upload_failed(ex, *u, std::move(s).error());
        co_return;
    }
    const std::uint64_t size = (*u)->offset.load();
    auto c = co_await store_.commit_upload(*u, *d, std::nullopt);
    if (!c) {
        co_await fail(ex, code_for(c.error(), Code::blob_upload_invalid), c.error().detail);
        co_return;
    }
    if (observed()) {
        co_await on_blob_push(ex, r.name, *d, size);
    }
    co_await reply(ex, blob_created(r.name, *d));
}

Task<void> Registry::upload_status(http::Exchange& ex, const Route& r) noexcept {
    if (!storage::layout_valid_upload_id(r.ref)) {
        co_await fail(ex, Code::blob_upload_unknown, "invalid upload id");
        co_return;
    }
    auto off = co_await store_.upload_offset(r.name, r.ref);
    if (!off) {
        co_await fail(ex, code_for(off.error(), Code::blob_upload_unknown), off.error().detail);
        co_return;
    }
    http::Response resp = empty_response(204);
    resp.add("Location", upload_location(r.name, r.ref));
    resp.add("Range", upload_range(*off));
    resp.add("Docker-Upload-UUID", r.ref);
    co_await reply(ex, std::move(resp));
}

Task<void> Registry::cancel_upload(http::Exchange& ex, const Route& r) noexcept {
    if (!storage::layout_valid_upload_id(r.ref)) {
        co_await fail(ex, Code::blob_upload_unknown, "invalid upload id");
        co_return;
    }
    auto u = co_await store_.acquire_upload(r.name, r.ref);
    if (!u) {
        co_await fail(ex, acquire_code(u.error()), u.error().detail);
        co_return;
    }
    co_await store_.cancel_upload(*u);
    co_await reply(ex, empty_response(204));
}

} // namespace rp::registry
