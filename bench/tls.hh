// SPDX-License-Identifier: Apache-2.0
#pragma once

// TLS for the load generator's connections (OpenSSL): a verified full
// handshake on a connected blocking socket, after which the engine moves
// the session onto memory BIOs and drives the bytes through its io_uring.

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "util/result.hh"

namespace rp::bench {

struct SslFree {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

class TlsClient {
  public:
    // Trusts `cafile` (empty: the system's CAs). No session resumption: every
    // connection makes a full handshake, as a fresh client does.
    static util::Result<std::shared_ptr<TlsClient>> create(const std::string& cafile);
    ~TlsClient();
    TlsClient(const TlsClient&) = delete;
    TlsClient& operator=(const TlsClient&) = delete;

    // Handshakes on `fd` (connected, blocking, with timeouts set), checking
    // the certificate against `host`.
    util::Result<SslPtr> connect(int fd, const std::string& host) const;

  private:
    TlsClient() = default;
    SSL_CTX* ctx_ = nullptr;
};

// Where a session reads ciphertext from and writes it to once the engine
// drives it: OpenSSL reads straight from the receive buffer (`in`, advanced
// as it is consumed) and appends records to `out`, which the engine sends
// and clears. No copy through memory BIOs.
struct CipherIo {
    const char* in = nullptr;
    std::size_t in_len = 0;
    std::string out;
};
// Replaces the session's socket BIO with one over `io` (which must outlive
// the session).
bool use_cipher_io(SSL* ssl, CipherIo* io);
// Every error OpenSSL queued on this thread, as one line.
std::string tls_errors();

} // namespace rp::bench
