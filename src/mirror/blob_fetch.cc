// SPDX-License-Identifier: Apache-2.0
#include "mirror/blob_fetch.hh"

#include <fcntl.h>

#include <charconv>
#include <cstring>
#include <utility>

#include "reactor/ops.hh"

namespace rp::mirror {

using util::Errc;
using util::Error;
using util::Result;

bool resumable(const Error& e) noexcept {
    return e.kind == Errc::closed || e.kind == Errc::timeout || e.kind == Errc::busy;
}

std::optional<std::uint64_t> content_length(const net::Response& r) noexcept {
    const std::string* v = r.header("Content-Length");
    if (v == nullptr || v->empty()) {
        return std::nullopt;
    }
    std::uint64_t n = 0;
    const char* end = v->data() + v->size();
    auto [p, ec] = std::from_chars(v->data(), end, n);
    if (ec != std::errc() || p != end) {
        return std::nullopt;
    }
    return n;
}

ResumingSource::ResumingSource(Fetcher& f, const Upstream& u, std::string name, std::string digest,
                               std::uint64_t body_max, std::unique_ptr<net::Download> first,
                               ResumePolicy policy) noexcept
    : f_(f), u_(u), name_(std::move(name)), digest_(std::move(digest)), body_max_(body_max),
      d_(std::move(first)), policy_(policy) {}

reactor::Task<Result<std::size_t>> ResumingSource::read(char* dst, std::size_t cap) noexcept {
    // Bounded: each turn reads, or spends one of the resumes.
    for (unsigned turn = 0; turn <= policy_.resumes_max + 1 || skip_ > 0; ++turn) {
        auto r = co_await d_->read(dst, cap);
        if (!r) {
            if (auto again = co_await resume(std::move(r).error()); !again) {
                co_return std::move(again).error();
            }
            continue;
        }
        std::size_t n = *r;
        received_ += n;
        if (skip_ > 0 && n > 0) { // a resume that restarted from the first byte
            const std::size_t drop = skip_ < n ? static_cast<std::size_t>(skip_) : n;
            std::memmove(dst, dst + drop, n - drop);
            skip_ -= drop;
            n -= drop;
            if (n == 0) {
                continue;
            }
        } else if (skip_ > 0) {
            co_return Error::of(Errc::closed,
                                "upstream " + u_.url + " sent less of " + digest_ + " than before");
        }
        delivered_ += n;
        co_return n;
    }
    co_return Error::of(Errc::closed, "upstream " + u_.url + ": " + digest_ + " did not resume");
}

reactor::Task<Result<void>> ResumingSource::resume(Error why) noexcept {
    for (;;) {
        if (!resumable(why) || resumes_ >= policy_.resumes_max) {
            co_return why;
        }
        co_await reactor::sleep_ms(policy_.backoff_ms << resumes_);
        ++resumes_;
        d_.reset();
        auto next = co_await f_.blob(u_, name_, digest_, body_max_, delivered_);
        if (!next) {
            why = std::move(next).error();
            continue;
        }
        auto h = co_await (*next)->head();
        if (!h) {
            why = std::move(h).error();
            continue;
        }
        skip_ = (*h)->status == 200 ? delivered_ : 0;
        d_ = std::move(*next);
        co_return util::Ok{};
    }
}

reactor::Task<Result<void>> fetch_blob(Fetcher& f, storage::Store& store, const Upstream& u,
                                       std::string repo, std::string name, storage::Digest d,
                                       Flights::Flight& fl, std::uint64_t* received,
                                       ResumePolicy policy) {
    const std::uint64_t max = store.config().blob_bytes_max;
    auto dl = co_await f.blob(u, name, d.str(), max);
    if (!dl) {
        co_return std::move(dl).error();
    }
    auto h = co_await (*dl)->head(); // known already: blob() waited for it
    if (!h) {
        co_return std::move(h).error();
    }
    const std::optional<std::uint64_t> len = content_length(**h);
    if (len && *len > max) {
        co_return Error::of(Errc::too_large, "upstream " + u.url + ": " + d.str() + " is " +
                                                 std::to_string(*len) + " bytes, over the limit");
    }
    auto up = co_await store.start_upload(std::move(repo));
    if (!up) {
        co_return std::move(up).error();
    }
    storage::Upload& upload = **up;
    if (len) {
        // Readers get their own descriptor of the file, valid after the
        // commit renames it and after a failure removes it.
        int rfd = ::fcntl(upload.fd, F_DUPFD_CLOEXEC, 0);
        if (rfd >= 0) {
            fl.data.reset(rfd);
            fl.size = *len;
            upload.progress = &fl.bytes;
        }
    }
    fl.headed.set();
    ResumingSource src(f, u, std::move(name), d.str(), max, std::move(*dl), policy);
    auto got = co_await store.receive(upload, src);
    upload.progress = nullptr; // every write has finished
    *received = src.received();
    if (!got) {
        co_await store.cancel_upload(*up);
        co_return got;
    }
    auto c = co_await store.commit_upload(*up, d, len);
    if (!c && (c.error().kind == Errc::digest_mismatch || c.error().kind == Errc::size_mismatch)) {
        co_return Error::of(Errc::digest_mismatch,
                            "upstream " + u.url + " sent bytes that do not match " + d.str());
    }
    co_return c;
}

} // namespace rp::mirror
