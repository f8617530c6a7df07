// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <fcntl.h>
#include <linux/stat.h>
#include <sys/socket.h>

#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <new>
#include <utility>

#include "reactor/shard.hh"
#include "util/assert.hh"

namespace rp::reactor {

// One io_uring operation awaited by a coroutine. The awaiter is a temporary in
// the awaiting frame, so it (and everything `Prep` captured) lives until the
// CQE arrives: the frame owns the operation (STYLE §4.2). With a timeout, a
// linked IORING_OP_LINK_TIMEOUT cancels the operation, which then completes
// with -ECANCELED; the timeout's own CQE carries no user data and is ignored.
template <typename Prep> class [[nodiscard]] OpAwaiter final : public Operation {
  public:
    OpAwaiter(Prep prep, int timeout_ms) noexcept
        : prep_(std::move(prep)), timeout_ms_(timeout_ms) {}
    OpAwaiter(const OpAwaiter&) = delete;
    OpAwaiter& operator=(const OpAwaiter&) = delete;

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        h_ = h;
        shard_ = Shard::current();
        io_uring_sqe* s = timeout_ms_ >= 0 ? shard_->sqe_pair() : shard_->sqe();
        prep_(s);
        io_uring_sqe_set_data(s, static_cast<Operation*>(this));
        if (timeout_ms_ >= 0) {
            s->flags |= IOSQE_IO_LINK;
            ts_.tv_sec = timeout_ms_ / 1000;
            ts_.tv_nsec = static_cast<long long>(timeout_ms_ % 1000) * 1000000;
            io_uring_sqe* t = shard_->sqe();
            io_uring_prep_link_timeout(t, &ts_, 0);
            io_uring_sqe_set_data(t, nullptr);
        }
        shard_->op_started();
    }
    int await_resume() const noexcept { return res_; }
    void complete(int res, std::uint32_t flags) noexcept override {
        res_ = res;
        flags_ = flags;
        shard_->op_finished();
        h_.resume();
    }

  private:
    Prep prep_;
    int timeout_ms_;
    int res_ = 0;
    std::uint32_t flags_ = 0;
    __kernel_timespec ts_{};
    std::coroutine_handle<> h_;
    Shard* shard_ = nullptr;
};

template <typename Prep> OpAwaiter<Prep> make_op(Prep p, int timeout_ms = -1) noexcept {
    return OpAwaiter<Prep>(std::move(p), timeout_ms);
}

// Every function below returns an awaitable yielding the CQE's res
// (a negative errno on failure). Buffers are borrowed from the caller's frame.

inline auto accept(int fd) noexcept {
    return make_op([fd](io_uring_sqe* s) {
        io_uring_prep_accept(s, fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    });
}

inline auto recv(int fd, void* buf, std::size_t len, int timeout_ms) noexcept {
    return make_op([=](io_uring_sqe* s) { io_uring_prep_recv(s, fd, buf, len, 0); }, timeout_ms);
}

inline auto send(int fd, const void* buf, std::size_t len, int timeout_ms) noexcept {
    return make_op([=](io_uring_sqe* s) { io_uring_prep_send(s, fd, buf, len, MSG_NOSIGNAL); },
                   timeout_ms);
}

inline auto poll(int fd, unsigned mask, int timeout_ms) noexcept {
    return make_op([=](io_uring_sqe* s) { io_uring_prep_poll_add(s, fd, mask); }, timeout_ms);
}

inline auto read(int fd, void* buf, unsigned len, std::uint64_t off) noexcept {
    return make_op([=](io_uring_sqe* s) { io_uring_prep_read(s, fd, buf, len, off); });
}

inline auto write(int fd, const void* buf, unsigned len, std::uint64_t off) noexcept {
    return make_op([=](io_uring_sqe* s) { io_uring_prep_write(s, fd, buf, len, off); });
}

inline auto fsync(int fd, bool datasync = false) noexcept {
    return make_op(
        [=](io_uring_sqe* s) { io_uring_prep_fsync(s, fd, datasync ? IORING_FSYNC_DATASYNC : 0); });
}

inline auto close(int fd) noexcept {
    return make_op([=](io_uring_sqe* s) { io_uring_prep_close(s, fd); });
}

// Path-taking operations borrow the path: it must live in the awaiting
// frame (a by-value coroutine parameter or local) until the CQE arrives. The
// awaiter itself holds only trivially copyable state because GCC 12 may
// relocate a co_await temporary bitwise, which breaks a std::string's SSO
// pointer (seen as a bad free under ASan).
inline auto openat(int dirfd, const char* path, int flags, mode_t mode = 0) noexcept {
    return make_op(
        [=](io_uring_sqe* s) { io_uring_prep_openat(s, dirfd, path, flags | O_CLOEXEC, mode); });
}

inline auto statx(int dirfd, const char* path, int flags, unsigned mask,
                  struct statx* out) noexcept {
    return make_op([=](io_uring_sqe* s) { io_uring_prep_statx(s, dirfd, path, flags, mask, out); });
}

inline auto renameat(int olddir, const char* from, int newdir, const char* to,
                     unsigned flags = 0) noexcept {
    return make_op(
        [=](io_uring_sqe* s) { io_uring_prep_renameat(s, olddir, from, newdir, to, flags); });
}

inline auto unlinkat(int dirfd, const char* path, int flags) noexcept {
    return make_op([=](io_uring_sqe* s) { io_uring_prep_unlinkat(s, dirfd, path, flags); });
}

inline auto mkdirat(int dirfd, const char* path, mode_t mode) noexcept {
    return make_op([=](io_uring_sqe* s) { io_uring_prep_mkdirat(s, dirfd, path, mode); });
}

inline auto splice(int fd_in, std::int64_t off_in, int fd_out, std::int64_t off_out, unsigned len,
                   unsigned flags) noexcept {
    return make_op([=](io_uring_sqe* s) {
        io_uring_prep_splice(s, fd_in, off_in, fd_out, off_out, len, flags);
    });
}

// Sleeps; resolves to -ETIME when the time passed.
class [[nodiscard]] Sleep final : public Operation {
  public:
    explicit Sleep(std::uint64_t ms) noexcept {
        ts_.tv_sec = static_cast<long long>(ms / 1000);
        ts_.tv_nsec = static_cast<long long>(ms % 1000) * 1000000;
    }
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        h_ = h;
        shard_ = Shard::current();
        io_uring_sqe* s = shard_->sqe();
        io_uring_prep_timeout(s, &ts_, 0, 0);
        io_uring_sqe_set_data(s, static_cast<Operation*>(this));
        shard_->op_started();
    }
    int await_resume() const noexcept { return res_; }
    void complete(int res, std::uint32_t) noexcept override {
        res_ = res;
        shard_->op_finished();
        h_.resume();
    }

  private:
    __kernel_timespec ts_{};
    int res_ = 0;
    std::coroutine_handle<> h_;
    Shard* shard_ = nullptr;
};

inline Sleep sleep_ms(std::uint64_t ms) noexcept { return Sleep(ms); }

// A timer that can be cancelled: a flow sleeps on it, and the shard's thread
// (directly, or another thread through the shard's inbox) cancels it with
// IORING_OP_ASYNC_CANCEL, which ends the sleep at once. Reusable: one sleep
// at a time. A cancel before a sleep makes that sleep end at once too, so a
// stop never races a flow between two sleeps.
class Timer final : public Operation {
  public:
    Timer() = default;
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    ~Timer() { RP_ASSERT(!armed_); }

    struct [[nodiscard]] SleepAwaiter {
        Timer& t;
        std::uint64_t ms;
        bool await_ready() const noexcept { return t.cancelled_; }
        void await_suspend(std::coroutine_handle<> h) noexcept { t.arm(h, ms); }
        // -ETIME when the time passed, -ECANCELED when cancelled.
        int await_resume() const noexcept { return t.cancelled_ ? -ECANCELED : t.res_; }
    };
    SleepAwaiter sleep(std::uint64_t ms) noexcept { return SleepAwaiter{*this, ms}; }

    // On the shard's thread: ends the current sleep, and every later one.
    void cancel() noexcept {
        cancelled_ = true;
        if (armed_) {
            shard_->cancel(this);
        }
    }
    bool cancelled() const noexcept { return cancelled_; }
    bool sleeping() const noexcept { return armed_; }

    void complete(int res, std::uint32_t) noexcept override {
        res_ = res;
        armed_ = false;
        shard_->op_finished();
        std::exchange(h_, nullptr).resume();
    }

  private:
    void arm(std::coroutine_handle<> h, std::uint64_t ms) noexcept {
        h_ = h;
        shard_ = Shard::current();
        ts_.tv_sec = static_cast<long long>(ms / 1000);
        ts_.tv_nsec = static_cast<long long>(ms % 1000) * 1000000;
        io_uring_sqe* s = shard_->sqe();
        io_uring_prep_timeout(s, &ts_, 0, 0);
        io_uring_sqe_set_data(s, static_cast<Operation*>(this));
        shard_->op_started();
        armed_ = true;
    }
    __kernel_timespec ts_{};
    int res_ = 0;
    bool armed_ = false;
    bool cancelled_ = false;
    std::coroutine_handle<> h_;
    Shard* shard_ = nullptr;
};

} // namespace rp::reactor

namespace rp::reactor {

// An operation started now and awaited later, so a flow can overlap it with
// other work (the upload pipeline writes one buffer while it receives the
// next). It lives in the owning frame; that frame must await it before it
// ends (asserted), since the kernel writes into it on completion.
class PendingOp final : public Operation {
  public:
    PendingOp() = default;
    PendingOp(const PendingOp&) = delete;
    PendingOp& operator=(const PendingOp&) = delete;
    ~PendingOp() { RP_ASSERT(!active_); }

    template <typename Prep> void start(Prep prep) noexcept {
        RP_ASSERT(!active_);
        shard_ = Shard::current();
        io_uring_sqe* s = shard_->sqe();
        prep(s);
        io_uring_sqe_set_data(s, static_cast<Operation*>(this));
        shard_->op_started();
        active_ = true;
        done_ = false;
    }
    bool active() const noexcept { return active_; }

    struct [[nodiscard]] WaitAwaiter {
        PendingOp& op;
        bool await_ready() const noexcept { return op.done_; }
        void await_suspend(std::coroutine_handle<> h) noexcept { op.waiter_ = h; }
        int await_resume() const noexcept {
            RP_ASSERT(op.done_);
            op.active_ = false;
            return op.res_;
        }
    };
    // Resolves to the CQE's res once the operation completed.
    WaitAwaiter wait() noexcept {
        RP_ASSERT(active_);
        return WaitAwaiter{*this};
    }

    void complete(int res, std::uint32_t) noexcept override {
        res_ = res;
        done_ = true;
        shard_->op_finished();
        if (waiter_) {
            std::exchange(waiter_, nullptr).resume();
        }
    }

  private:
    Shard* shard_ = nullptr;
    std::coroutine_handle<> waiter_;
    int res_ = 0;
    bool active_ = false;
    bool done_ = false;
};

} // namespace rp::reactor

namespace rp::reactor {

// Fire-and-forget: submits an operation whose result nobody waits for (an
// advisory writeback). The operation object owns itself and is deleted when
// its CQE is reaped (STYLE §4.2). Whatever the SQE references must be owned
// by `prep`'s captures or outlive the operation; the kernel holds its own
// reference to any file, so closing the fd meanwhile is safe.
template <typename Prep> void detach(Prep prep) noexcept {
    class Detached final : public Operation {
      public:
        explicit Detached(Shard* s) noexcept : shard_(s) {}
        void complete(int, std::uint32_t) noexcept override {
            shard_->op_finished();
            delete this;
        }

      private:
        Shard* shard_;
    };
    Shard* shard = Shard::current();
    auto* op = new (std::nothrow) Detached(shard);
    if (op == nullptr) {
        return; // advisory only: skipping it under memory pressure is fine
    }
    io_uring_sqe* s = shard->sqe();
    prep(s);
    io_uring_sqe_set_data(s, static_cast<Operation*>(op));
    shard->op_started();
}

} // namespace rp::reactor
