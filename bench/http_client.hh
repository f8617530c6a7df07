// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where the registry is, and a small blocking HTTP/1.1 client for the steps
// that are not measured: probes, readiness polling, pagination checks.

#include <sys/socket.h>

#include <string>
#include <string_view>

#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::bench {

struct Endpoint {
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    std::string authority; // for the Host header
    std::string url;       // "http://HOST:PORT", without a trailing slash
};

util::Result<Endpoint> resolve(std::string_view url);
// A connected, blocking TCP socket with TCP_NODELAY, or the connect error.
util::Result<util::UniqueFd> connect_to(const Endpoint& ep);

struct SimpleResponse {
    int status = 0;
    std::string body;
    std::string location;
    std::string link; // the rel="next" target, already extracted
    std::string digest;
    std::uint64_t content_length = 0;
};

// One keep-alive connection; reconnects (and retries once) when the server
// closed it while idle. Every call is bounded by timeout_ms.
class BlockingClient {
  public:
    explicit BlockingClient(const Endpoint& ep, int timeout_ms = 30000)
        : ep_(ep), timeout_ms_(timeout_ms) {}

    util::Result<SimpleResponse> request(std::string_view method, std::string_view target,
                                         std::string_view headers = {}, std::string_view body = {});
    void close() { fd_.reset(); }

  private:
    util::Result<SimpleResponse> attempt(std::string_view method, std::string_view target,
                                         std::string_view headers, std::string_view body,
                                         bool& got_bytes);

    const Endpoint& ep_; // borrowed: the run's endpoint outlives every client
    int timeout_ms_;
    util::UniqueFd fd_;
};

} // namespace rp::bench
