// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where the registry is, and a small blocking HTTP/1.1 client for the steps
// that are not measured: probes, readiness polling, pagination checks.

#include <sys/socket.h>

#include <string>
#include <string_view>

#include "tls.hh"
#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::bench {

struct Endpoint {
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    std::string host;               // for the certificate check
    std::string authority;          // for the Host header
    std::string url;                // "http(s)://HOST:PORT", without a trailing slash
    std::shared_ptr<TlsClient> tls; // set for https://
    std::string extra_headers;      // --header lines, each ending in "\r\n", on every request
};

// `cafile` is the CA an https:// server's certificate must chain to (empty:
// the system's).
util::Result<Endpoint> resolve(std::string_view url, const std::string& cafile = {});
// A connected, blocking TCP socket with TCP_NODELAY, or the connect error.
util::Result<util::UniqueFd> connect_to(const Endpoint& ep);

// A connection as the untimed steps use it: blocking, TLS when the endpoint
// says so, every call bounded by the socket timeouts.
struct Connection {
    util::UniqueFd fd;
    SslPtr ssl;
    bool valid() const noexcept { return fd.valid(); }
    void reset() noexcept {
        ssl.reset();
        fd.reset();
    }
    util::Result<void> send_all(std::string_view a, std::string_view b = {});
    // >0 bytes, 0 at the end of the stream, or the error.
    util::Result<std::size_t> recv(char* buf, std::size_t cap);
};
util::Result<Connection> open_connection(const Endpoint& ep, int timeout_ms);

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
    void close() { conn_.reset(); }

  private:
    util::Result<SimpleResponse> attempt(std::string_view method, std::string_view target,
                                         std::string_view headers, std::string_view body,
                                         bool& got_bytes);

    const Endpoint& ep_; // borrowed: the run's endpoint outlives every client
    int timeout_ms_;
    Connection conn_;
};

} // namespace rp::bench
