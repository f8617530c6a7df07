// SPDX-License-Identifier: Apache-2.0
#include "http/transport.hh"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "http/server.hh"
#include "reactor/ops.hh"

namespace rp::http {

using reactor::Task;
using util::Errc;
using util::Error;
using util::Result;

Error io_error(int n, const char* what) {
    if (n == 0) {
        return Error::of(Errc::closed, "peer closed the connection");
    }
    if (n == -ECANCELED || n == -ETIME) {
        return Error::of(Errc::timeout, "peer made no progress in time");
    }
    return Error::sys(n, what);
}

void Transport::cut() noexcept {
    if (!cut_ && fd_.valid()) {
        cut_ = true;
        (void)::shutdown(fd_.get(), SHUT_RDWR);
        srv_.shard().cancel_fd(fd_.get()); // ends a wait the shutdown does not (a splice)
    }
}

Task<void> Transport::close() noexcept {
    int fd = fd_.release();
    if (fd >= 0) {
        (void)co_await reactor::close(fd);
    }
}

// ---- plain --------------------------------------------------------------

Task<Result<void>> PlainTransport::open(int) noexcept { co_return util::Ok{}; }

Task<int> PlainTransport::recv(char* buf, std::size_t cap, int timeout_ms) noexcept {
    co_return co_await reactor::recv(fd_.get(), buf, cap, timeout_ms);
}

Task<int> PlainTransport::send(const char* data, std::size_t len, int timeout_ms) noexcept {
    std::size_t off = 0;
    while (off < len) {
        int n = co_await reactor::send(fd_.get(), data + off, len - off, timeout_ms);
        if (n <= 0) {
            co_return n == 0 ? -EPIPE : n;
        }
        off += static_cast<std::size_t>(n);
        sent_ += static_cast<std::uint64_t>(n);
    }
    co_return static_cast<int>(len);
}

Task<bool> PlainTransport::wait_readable(int timeout_ms) noexcept {
    int p = co_await reactor::poll(fd_.get(), POLLIN, timeout_ms);
    co_return p > 0 && (p & POLLIN) != 0;
}

Task<Result<void>> PlainTransport::send_file(int file_fd, std::uint64_t off, std::uint64_t len,
                                             int timeout_ms) noexcept {
    co_return co_await splice_file_to_socket(srv_, file_fd, off, len, fd_.get(), timeout_ms, sent_);
}

// ---- splice -------------------------------------------------------------

// The socket is non-blocking, so a splice into a full socket returns -EAGAIN
// instead of parking an io-wq worker on a slow reader; then we wait for
// POLLOUT with a timeout.
Task<Result<void>> splice_pipe_to_socket(int pipe_r, int sock, std::size_t len, int timeout_ms,
                                         std::uint64_t& sent) noexcept {
    for (int idle = 0; len > 0;) {
        // A direct, non-blocking splice: the pipe holds the bytes and the
        // socket is O_NONBLOCK, so this never sleeps; it saves the io-wq
        // round trip io_uring takes for every splice.
        ssize_t s =
            ::splice(pipe_r, nullptr, sock, nullptr, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        int n = s >= 0 ? static_cast<int>(s) : -errno;
        if (n == -EAGAIN) {
            int p = co_await reactor::poll(sock, POLLOUT, timeout_ms);
            if (p < 0 || (p & (POLLERR | POLLHUP)) != 0 || ++idle > 1000000) {
                co_return p < 0 ? io_error(p, "poll") : Error::of(Errc::closed);
            }
            continue;
        }
        if (n <= 0) {
            co_return n == 0 ? Error::of(Errc::closed) : Error::sys(n, "splice to socket");
        }
        len -= static_cast<std::size_t>(n);
        sent += static_cast<std::uint64_t>(n);
    }
    co_return util::Ok{};
}

// Two pipes: while one drains into the socket (a direct non-blocking splice
// on this thread), the next chunk is spliced from the file into the other by
// io_uring (on an io-wq worker, since a page cache miss blocks). Pipes come
// back to the shard's pool only empty; after a failure they are closed.
Task<Result<void>> splice_file_to_socket(ShardServer& srv, int file_fd, std::uint64_t off,
                                         std::uint64_t len, int sock, int timeout_ms,
                                         std::uint64_t& sent) noexcept {
    auto a = srv.take_pipe();
    if (!a) {
        co_return std::move(a).error();
    }
    auto b = srv.take_pipe();
    if (!b) {
        srv.give_pipe(std::move(*a));
        co_return std::move(b).error();
    }
    Pipe pipes[2] = {std::move(*a), std::move(*b)};
    reactor::PendingOp fill;
    auto start_fill = [&](int i, std::uint64_t at, std::uint64_t n) {
        int in = file_fd;
        int out = pipes[i].w.get();
        auto want = static_cast<unsigned>(n < pipes[i].size ? n : pipes[i].size);
        auto from = static_cast<std::int64_t>(at);
        fill.start([=](io_uring_sqe* s) {
            io_uring_prep_splice(s, in, from, out, -1, want, SPLICE_F_MOVE);
        });
    };
    Result<void> result = util::Ok{};
    std::uint64_t next = off;
    std::uint64_t left = len; // not yet spliced from the file
    start_fill(0, next, left);
    for (int cur = 0;; cur ^= 1) {
        int n = co_await fill.wait();
        if (n <= 0) {
            result = n == 0 ? Error::of(Errc::size_mismatch, "file shorter than expected")
                            : Error::sys(n, "splice from file");
            break;
        }
        next += static_cast<std::uint64_t>(n);
        left -= static_cast<std::uint64_t>(n);
        if (left > 0) {
            start_fill(cur ^ 1, next, left); // overlaps with the send below
        }
        result = co_await splice_pipe_to_socket(pipes[cur].r.get(), sock,
                                                static_cast<std::size_t>(n), timeout_ms, sent);
        if (!result || left == 0) {
            break;
        }
    }
    if (fill.active()) {
        (void)co_await fill.wait(); // the kernel is writing into a pipe we hold
    }
    if (!result) {
        co_return result; // the pipes may hold bytes we cannot account for: they close here
    }
    srv.give_pipe(std::move(pipes[0]));
    srv.give_pipe(std::move(pipes[1]));
    co_return util::Ok{};
}

} // namespace rp::http
