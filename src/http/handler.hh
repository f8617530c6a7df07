// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string_view>

#include "reactor/task.hh"
#include "util/result.hh"

namespace rp::http {

class Exchange;

// What the connection reports after each request, for an access log.
struct AccessRecord {
    std::string_view peer;
    std::string_view user; // who the request came from: the client certificate's name (mTLS)
    std::string_view method;
    std::string_view target;
    int status = 0;
    std::uint64_t body_bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t duration_us = 0;
    unsigned shard = 0;
    std::string_view request_id;
};

// The application behind the HTTP layer (the registry). handle() must call
// Exchange::respond exactly once; the connection answers 500 if it did not.
class Handler {
  public:
    virtual ~Handler() = default;
    virtual reactor::Task<void> handle(Exchange& ex) noexcept = 0;
    virtual void log_access(const AccessRecord& rec) noexcept = 0;
    // The stop is about to cut the connections that did not drain in time:
    // wake whatever a response waits on that is not a socket (a stream
    // following a mirror fetch), so the cut ends it. Any thread.
    virtual void cutting() noexcept {}
    // A connection ended before its first request: its TLS handshake failed
    // or timed out. For the log and the counters; the connection is closed.
    virtual void handshake_failed(std::string_view peer, const util::Error& why) noexcept {
        (void)peer;
        (void)why;
    }
};

} // namespace rp::http
