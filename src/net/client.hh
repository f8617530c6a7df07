// SPDX-License-Identifier: Apache-2.0
#pragma once

// Outbound HTTP on a shard: libcurl's multi interface driven by the shard's
// io_uring. curl's socket callback becomes a POLL_ADD per socket and its
// timer callback one cancellable timeout, so a transfer never blocks the
// shard's thread (DESIGN §6, "Outbound HTTP on the reactor"). Connections
// and HTTP/2 sessions are reused through the multi handle's cache.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "reactor/task.hh"
#include "util/result.hh"

namespace rp::reactor {
class Shard;
}

namespace rp::net {

struct Header {
    std::string name;
    std::string value;
};

struct Request {
    std::string method = "GET"; // GET, HEAD, or POST with `body`
    std::string url;
    std::string body;                 // a POST's (sent as is, with the headers given)
    std::vector<std::string> headers; // "Name: value"
    std::uint32_t connect_timeout_ms = 10000;
    // No byte for this long, at any point of the transfer (before the status
    // line too): the transfer fails with Errc::timeout.
    std::uint32_t stall_timeout_ms = 30000;
    // No response head (status line) this long after the start, connect
    // included (0: only the others apply); checked about once a second.
    std::uint32_t first_byte_timeout_ms = 0;
    // The whole transfer, connect included (0: no limit but the others).
    std::uint32_t total_timeout_ms = 0;
    // A collected body larger than this fails the transfer (Errc::too_large).
    std::size_t body_max = 4U << 20U;
    bool follow_redirects = false; // when followed, Authorization stays behind
    std::string ca_file;           // PEM bundle; empty: the system's
    bool verify_tls = true;
};

struct Response {
    long status = 0;
    std::vector<Header> headers; // of the last response (after any redirect)
    std::string body;
    std::string effective_url;
    // The last header of that name (case-insensitive), or nullptr.
    const std::string* header(std::string_view name) const noexcept;
};

class Download;

// One per shard, created and used on that shard's thread. Destroying it (or
// the shard stopping) ends every transfer in flight with Errc::stopped.
class Client {
  public:
    Client();
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    util::Result<void> init();

    // Runs one transfer; the body is collected into the response.
    reactor::Task<util::Result<Response>> fetch(Request req);
    // Starts a transfer whose body is read as it arrives (body_max bounds its
    // total). Destroying the download abandons the transfer.
    std::unique_ptr<Download> download(Request req);

    // Connections opened so far (a reused connection is not counted again).
    std::uint64_t connections_opened() const noexcept;
    std::size_t in_flight() const noexcept;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

// A body read as it arrives, with bounded memory: at most about 1 MiB is
// held, and the transfer pauses (CURL_WRITEFUNC_PAUSE) while the reader is
// behind, so a slow reader slows the upstream, never the shard.
class Download {
  public:
    ~Download();
    Download(const Download&) = delete;
    Download& operator=(const Download&) = delete;

    // The final response's status and headers (after any redirect followed):
    // known at its first body byte, or at the end of a transfer without one.
    reactor::Task<util::Result<const Response*>> head();
    // Up to `cap` body bytes into `dst`; 0 at the end of the body. An error
    // when the transfer failed (the bytes before it were read).
    reactor::Task<util::Result<std::size_t>> read(char* dst, std::size_t cap);
    std::uint64_t received() const noexcept;

  private:
    friend class Client;
    struct State;
    Download(Client::Impl* impl, Request req);
    std::unique_ptr<State> st_;
    Client::Impl* impl_;
};

} // namespace rp::net
