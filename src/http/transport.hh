// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "reactor/task.hh"
#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::http {

class ShardServer;

// Every byte of a connection goes through its transport: plain TCP or TLS.
// The connection's HTTP code calls only these, so it never knows which it
// has. One transport per connection, used by its shard's thread only.
//
// Results follow the socket calls they stand for: recv and send give a byte
// count, 0 when the peer ended the stream, or a negative errno; -ETIME and
// -ECANCELED mean the timeout passed (or the connection was cut).
class Transport {
  public:
    Transport(ShardServer& srv, int fd) noexcept : srv_(srv), fd_(fd) {}
    virtual ~Transport() = default;
    Transport(const Transport&) = delete;
    Transport& operator=(const Transport&) = delete;

    // Before the first request: the TLS handshake, bounded by timeout_ms.
    virtual reactor::Task<util::Result<void>> open(int timeout_ms) noexcept = 0;
    // Up to `cap` bytes into `buf`.
    virtual reactor::Task<int> recv(char* buf, std::size_t cap, int timeout_ms) noexcept = 0;
    // All `len` bytes, or a failure (then the connection must close).
    virtual reactor::Task<int> send(const char* data, std::size_t len, int timeout_ms) noexcept = 0;
    // Waits, holding no buffer, until a recv would find bytes. False on
    // timeout or when the socket failed.
    virtual reactor::Task<bool> wait_readable(int timeout_ms) noexcept = 0;
    // Sends the file range [off, off + len) with bounded memory; each step
    // that makes no progress for timeout_ms fails it.
    virtual reactor::Task<util::Result<void>>
    send_file(int file_fd, std::uint64_t off, std::uint64_t len, int timeout_ms) noexcept = 0;
    // Ends the connection at once: every operation in flight fails.
    void cut() noexcept;
    // The last step of a connection; the transport is unusable after it.
    virtual reactor::Task<void> close() noexcept;

    // The verified client certificate's subject common name (mTLS), or "".
    const std::string& peer_subject() const noexcept { return peer_subject_; }
    bool secure() const noexcept { return secure_; }
    // Bytes handed to the kernel so far (for the access log).
    std::uint64_t bytes_sent() const noexcept { return sent_; }

  protected:
    ShardServer& srv_;
    util::UniqueFd fd_;
    std::string peer_subject_;
    bool secure_ = false;
    bool cut_ = false;
    std::uint64_t sent_ = 0;
};

// Plain TCP: io_uring recv and send, and file ranges spliced through a pipe.
class PlainTransport final : public Transport {
  public:
    using Transport::Transport;
    reactor::Task<util::Result<void>> open(int timeout_ms) noexcept override;
    reactor::Task<int> recv(char* buf, std::size_t cap, int timeout_ms) noexcept override;
    reactor::Task<int> send(const char* data, std::size_t len, int timeout_ms) noexcept override;
    reactor::Task<bool> wait_readable(int timeout_ms) noexcept override;
    reactor::Task<util::Result<void>> send_file(int file_fd, std::uint64_t off, std::uint64_t len,
                                                int timeout_ms) noexcept override;
};

// Moves `len` bytes from a pipe to a non-blocking socket (shared by the
// plain transport and TLS with kernel TLS, where the kernel encrypts).
reactor::Task<util::Result<void>> splice_pipe_to_socket(int pipe_r, int sock, std::size_t len,
                                                        int timeout_ms,
                                                        std::uint64_t& sent) noexcept;
// Sends a file range with splice, overlapping the file read with the send.
reactor::Task<util::Result<void>> splice_file_to_socket(ShardServer& srv, int file_fd,
                                                        std::uint64_t off, std::uint64_t len,
                                                        int sock, int timeout_ms,
                                                        std::uint64_t& sent) noexcept;

// The error a failed recv or send stands for.
util::Error io_error(int n, const char* what);

} // namespace rp::http
