// SPDX-License-Identifier: Apache-2.0
#pragma once

// A blob fetched from an upstream into the cache while clients read it:
// the download goes through the store's upload pipeline (hashed as it lands,
// committed only when the digest verifies), and the flight tells readers how
// far the file is written. An interrupted transfer resumes with `Range`.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "mirror/fetcher.hh"
#include "mirror/flights.hh"
#include "storage/digest.hh"
#include "storage/store.hh"

namespace rp::mirror {

// How an interrupted upstream transfer is retried: up to `resumes_max`
// times per fetch, the n-th after `backoff_ms << n` (100, 200, 400 ms).
struct ResumePolicy {
    unsigned resumes_max = 3;
    std::uint64_t backoff_ms = 100;
};

// Whether a failed transfer may be resumed (the connection broke, stalled
// or the upstream answered 5xx/429 to the resume), as opposed to an answer
// (not found, refused, too large) or a stop.
bool resumable(const util::Error& e) noexcept;

// The Content-Length of a response, if it sent a valid one. Pure.
std::optional<std::uint64_t> content_length(const net::Response& r) noexcept;

// A download as the source of an upload, resuming after an interruption
// from the byte it reached: the upload pipeline sees one unbroken body.
class ResumingSource final : public storage::ByteSource {
  public:
    ResumingSource(Fetcher& f, const Upstream& u, std::string name, std::string digest,
                   std::uint64_t body_max, std::unique_ptr<net::Download> first,
                   ResumePolicy policy) noexcept;
    reactor::Task<util::Result<std::size_t>> read(char* dst, std::size_t cap) noexcept override;
    unsigned resumes() const noexcept { return resumes_; }
    std::uint64_t received() const noexcept { return received_; } // off the wire, resumes too

  private:
    reactor::Task<util::Result<void>> resume(util::Error why) noexcept;
    Fetcher& f_;
    const Upstream& u_;
    std::string name_;
    std::string digest_;
    std::uint64_t body_max_;
    std::unique_ptr<net::Download> d_;
    ResumePolicy policy_;
    std::uint64_t delivered_ = 0; // body bytes handed to the pipeline
    std::uint64_t skip_ = 0;      // bytes to drop: a resume answered with the whole blob
    unsigned resumes_ = 0;
    std::uint64_t received_ = 0;
};

// Fetches blob `d` of upstream repository `name` into cache repository
// `repo`, keeping the flight's `headed`, `size`, `data` and `bytes` up to
// date for readers. The caller lands the flight with the result.
// `received`: the bytes that came from the upstream (resumes included).
reactor::Task<util::Result<void>> fetch_blob(Fetcher& f, storage::Store& store, const Upstream& u,
                                             std::string repo, std::string name, storage::Digest d,
                                             Flights::Flight& fl, std::uint64_t* received,
                                             ResumePolicy policy = {});

} // namespace rp::mirror
