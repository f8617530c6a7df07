// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

#include "util/assert.hh"

namespace rp::reactor {

// A lazy coroutine task (libcommon Co::Task). Awaiting it starts it.
//
// Stack safety without tail calls: GCC 12 does not turn symmetric transfer
// into a tail call at -O0 or under ASan, so a loop awaiting tasks that finish
// at once would grow the stack without bound. Instead the awaiter resumes the
// child directly and, if the child finished synchronously, does not suspend
// at all (`await_suspend` returns false). Only a child that really suspended
// on I/O transfers back to its parent from final_suspend, so the stack depth
// is bounded by the nesting depth of tasks, not by loop iterations.
namespace detail {

struct PromiseBase {
    std::coroutine_handle<> continuation_;
    bool in_sync_start_ = false;

    struct FinalAwaiter {
        bool await_ready() const noexcept { return false; }
        template <typename P>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
            PromiseBase& p = h.promise();
            if (p.in_sync_start_ || !p.continuation_) {
                return std::noop_coroutine();
            }
            return p.continuation_;
        }
        void await_resume() const noexcept {}
    };

    std::suspend_always initial_suspend() const noexcept { return {}; }
    FinalAwaiter final_suspend() const noexcept { return {}; }
    [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
};

template <typename Promise> struct TaskAwaiter {
    std::coroutine_handle<Promise> h;

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> caller) noexcept {
        Promise& p = h.promise();
        p.continuation_ = caller;
        p.in_sync_start_ = true;
        h.resume();
        p.in_sync_start_ = false;
        return !h.done();
    }
};

} // namespace detail

template <typename T = void> class [[nodiscard]] Task {
  public:
    struct promise_type : detail::PromiseBase {
        std::optional<T> value_;
        Task get_return_object() noexcept {
            return Task(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        template <typename U> void return_value(U&& v) { value_.emplace(std::forward<U>(v)); }
    };
    using Handle = std::coroutine_handle<promise_type>;

    Task(Task&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Task& operator=(Task&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    Task(const Task&) = delete;
    Task& operator=(const Task&) = delete;
    ~Task() { reset(); }

    auto operator co_await() && noexcept {
        struct Awaiter : detail::TaskAwaiter<promise_type> {
            T await_resume() {
                RP_ASSERT(this->h.promise().value_.has_value());
                return std::move(*this->h.promise().value_);
            }
        };
        RP_ASSERT(h_ && !h_.done());
        return Awaiter{{h_}};
    }

  private:
    explicit Task(Handle h) noexcept : h_(h) {}
    void reset() noexcept {
        if (h_) {
            h_.destroy();
            h_ = nullptr;
        }
    }
    Handle h_;
};

template <> class [[nodiscard]] Task<void> {
  public:
    struct promise_type : detail::PromiseBase {
        Task get_return_object() noexcept {
            return Task(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        void return_void() const noexcept {}
    };
    using Handle = std::coroutine_handle<promise_type>;

    Task(Task&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Task& operator=(Task&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    Task(const Task&) = delete;
    Task& operator=(const Task&) = delete;
    ~Task() { reset(); }

    auto operator co_await() && noexcept {
        struct Awaiter : detail::TaskAwaiter<promise_type> {
            void await_resume() const noexcept {}
        };
        RP_ASSERT(h_ && !h_.done());
        return Awaiter{{h_}};
    }

  private:
    explicit Task(Handle h) noexcept : h_(h) {}
    void reset() noexcept {
        if (h_) {
            h_.destroy();
            h_ = nullptr;
        }
    }
    Handle h_;
};

// A fire-and-forget root coroutine: starts at once and frees itself when done.
// Used only by `spawn`, so every detached flow is a named Task.
struct Detached {
    struct promise_type {
        Detached get_return_object() const noexcept { return {}; }
        std::suspend_never initial_suspend() const noexcept { return {}; }
        std::suspend_never final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
    };
};

// Runs `t` to completion without an awaiting parent. The caller must make sure
// everything the task borrows outlives it (the shard's tables own such flows).
Detached spawn(Task<void> t);

} // namespace rp::reactor
