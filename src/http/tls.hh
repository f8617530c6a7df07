// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/transport.hh"
#include "util/result.hh"

using SSL_CTX = struct ssl_ctx_st;
using SSL = struct ssl_st;

namespace rp::http {

enum class ClientAuth { none, optional, required };

struct TlsConfig {
    std::string certificate;             // PEM chain, leaf first
    std::string key;                     // PEM private key (ECDSA, RSA or Ed25519)
    std::vector<std::string> client_cas; // PEM bundles that client certificates chain to
    ClientAuth client_auth = ClientAuth::none;
    std::string minimum_version = "tls1.2"; // tls1.0 .. tls1.3
    int handshake_timeout_ms = 10000;
};

// The server's TLS settings as an OpenSSL context that SIGHUP can replace.
// Thread-safe: shards take sessions from whatever context is current, and a
// reload swaps it; sessions already made keep the context they started with
// (OpenSSL counts its references), so reloading drops no connection.
class TlsContext {
  public:
    static util::Result<std::unique_ptr<TlsContext>> create(TlsConfig cfg);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    // Reads the certificate, key and CAs again; on any error the current
    // context stays and the error is returned.
    util::Result<void> reload();
    // A new server session from the current context (nullptr: out of memory).
    SSL* new_session() noexcept;
    const TlsConfig& config() const noexcept { return cfg_; }
    // What the certificate says, for the log: subject and expiry.
    std::string describe() const;
    std::uint64_t reloads() const noexcept { return reloads_.load(std::memory_order_relaxed); }

  private:
    explicit TlsContext(TlsConfig cfg) noexcept : cfg_(std::move(cfg)) {}

    TlsConfig cfg_;
    mutable std::mutex mu_;
    SSL_CTX* ctx_ = nullptr;
    std::string description_;
    std::atomic<std::uint64_t> reloads_{0};
};

// TLS over the socket itself (OpenSSL's socket BIO on the non-blocking fd),
// waiting for readiness with io_uring polls: nothing blocks the shard, and
// kernel TLS works when OpenSSL turns it on, so files are spliced to the
// socket as on a plain connection and never pass through user space. Without kernel TLS a file
// is read in bounded pieces (the shard's large buffers) and encrypted here.
class TlsTransport final : public Transport {
  public:
    TlsTransport(ShardServer& srv, int fd, SSL* ssl) noexcept;
    ~TlsTransport() override;
    reactor::Task<util::Result<void>> open(int timeout_ms) noexcept override;
    reactor::Task<int> recv(char* buf, std::size_t cap, int timeout_ms) noexcept override;
    reactor::Task<int> send(const char* data, std::size_t len, int timeout_ms) noexcept override;
    reactor::Task<bool> wait_readable(int timeout_ms) noexcept override;
    reactor::Task<util::Result<void>> send_file(int file_fd, std::uint64_t off, std::uint64_t len,
                                                int timeout_ms) noexcept override;
    reactor::Task<void> close() noexcept override;

  private:
    // Waits for what OpenSSL asked for after `rc`; 1 to retry, else the
    // negative errno (or 0 for a clean end) to give up with.
    reactor::Task<int> wait_for(int rc, int timeout_ms) noexcept;

    SSL* ssl_;
    bool failed_ = false; // a fatal TLS error: no close_notify
};

} // namespace rp::http
