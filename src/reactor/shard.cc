// SPDX-License-Identifier: Apache-2.0
#include "reactor/shard.hh"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "reactor/task.hh"
#include "util/assert.hh"

namespace rp::reactor {

namespace {
thread_local Shard* tl_current = nullptr;
constexpr unsigned reap_batch = 256;
} // namespace

Detached spawn(Task<void> t) { co_await std::move(t); }

// The read on the wake eventfd: completes when another thread posted.
class Shard::WakeOp final : public Operation {
  public:
    explicit WakeOp(Shard& s) noexcept : shard_(s) {}
    void complete(int res, std::uint32_t) noexcept override {
        shard_.wake_armed_ = false;
        if (res < 0 && res != -EAGAIN && res != -EINTR && res != -ECANCELED) {
            util::fatal("eventfd read", res);
        }
    }

  private:
    Shard& shard_;
};

Shard::Shard(unsigned id, unsigned ring_entries) noexcept
    : id_(id), ring_entries_(ring_entries < 2 ? 2 : ring_entries) {} // a linked pair needs 2

Shard::~Shard() {
    if (ring_ready_) {
        io_uring_queue_exit(&ring_);
    }
    delete wake_op_;
}

Shard* Shard::current() noexcept { return tl_current; }

util::Result<void> Shard::init() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CLAMP;
    int r = io_uring_queue_init_params(ring_entries_, &ring_, &p);
    if (r == -EINVAL) {
        // Kernels before 6.1 lack DEFER_TASKRUN (and 6.0 SINGLE_ISSUER).
        p = io_uring_params{};
        p.flags = IORING_SETUP_CLAMP;
        r = io_uring_queue_init_params(ring_entries_, &ring_, &p);
    }
    if (r < 0) {
        return util::Error::sys(r, "io_uring_queue_init");
    }
    ring_ready_ = true;
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        return util::Error::sys(errno, "eventfd");
    }
    wake_fd_.reset(efd);
    wake_op_ = new WakeOp(*this);
    tl_current = this;
    return util::Ok{};
}

io_uring_sqe* Shard::sqe() noexcept {
    for (int i = 0; i < 64; ++i) {
        io_uring_sqe* s = io_uring_get_sqe(&ring_);
        if (s != nullptr) {
            return s;
        }
        int r = io_uring_submit(&ring_);
        if (r < 0 && r != -EAGAIN && r != -EBUSY && r != -EINTR) {
            util::fatal("io_uring_submit", r);
        }
    }
    util::fatal("io_uring: no SQE after repeated submits", EBUSY);
}

io_uring_sqe* Shard::sqe_pair() noexcept {
    if (io_uring_sq_space_left(&ring_) < 2) {
        int r = io_uring_submit(&ring_);
        if (r < 0 && r != -EAGAIN && r != -EBUSY && r != -EINTR) {
            util::fatal("io_uring_submit", r);
        }
    }
    return sqe();
}

void Shard::post(Message m) noexcept {
    {
        std::lock_guard lk(inbox_mu_);
        inbox_.push_back(m);
    }
    std::uint64_t one = 1;
    ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
    (void)n; // EAGAIN means the counter is already non-zero: the shard will wake
}

static void resume_message(void* arg, std::uint64_t) noexcept {
    std::coroutine_handle<>::from_address(arg).resume();
}

void Shard::post_resume(std::coroutine_handle<> h) noexcept {
    post(Message{resume_message, h.address(), 0});
}

void Shard::cancel(const Operation* op) noexcept {
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel(s, const_cast<Operation*>(op), 0);
    io_uring_sqe_set_data(s, nullptr);
}

void Shard::cancel_fd(int fd) noexcept {
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel_fd(s, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(s, nullptr);
}

ThreadPool& Shard::blocking() noexcept {
    RP_ASSERT(blocking_ != nullptr);
    return *blocking_;
}

ThreadPool& Shard::companion() noexcept {
    RP_ASSERT(companion_ != nullptr);
    return *companion_;
}

void Shard::request_stop() noexcept {
    stop_.store(true, std::memory_order_release);
    post(Message{[](void*, std::uint64_t) noexcept {}, nullptr, 0});
}

void Shard::arm_wake() noexcept {
    if (wake_armed_) {
        return;
    }
    io_uring_sqe* s = sqe();
    io_uring_prep_read(s, wake_fd_.get(), &wake_buf_, sizeof wake_buf_, 0);
    io_uring_sqe_set_data(s, static_cast<Operation*>(wake_op_));
    wake_armed_ = true;
}

void Shard::drain_inbox() noexcept {
    {
        std::lock_guard lk(inbox_mu_);
        inbox_local_.swap(inbox_);
    }
    for (const Message& m : inbox_local_) {
        m.fn(m.arg, m.value);
    }
    inbox_local_.clear();
}

void Shard::reap() noexcept {
    io_uring_cqe* cqes[reap_batch];
    struct Done {
        Operation* op;
        int res;
        std::uint32_t flags;
    };
    Done done[reap_batch];
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, reap_batch);
    unsigned k = 0;
    for (unsigned i = 0; i < n; ++i) {
        auto* op = static_cast<Operation*>(io_uring_cqe_get_data(cqes[i]));
        if (op != nullptr) {
            done[k++] = Done{op, cqes[i]->res, cqes[i]->flags};
        }
    }
    io_uring_cq_advance(&ring_, n);
    for (unsigned i = 0; i < k; ++i) {
        done[i].op->complete(done[i].res, done[i].flags);
    }
}

void Shard::Turns::add(const Turns& o) noexcept {
    for (std::size_t i = 0; i < from.size(); ++i) {
        from[i] += o.from[i];
    }
    longest_us = std::max(longest_us, o.longest_us);
}

Shard::Turns Shard::turns() const noexcept {
    Turns t;
    for (std::size_t i = 0; i < t.from.size(); ++i) {
        t.from[i] = turns_from_[i].load(std::memory_order_relaxed);
    }
    t.longest_us = longest_turn_us_.load(std::memory_order_relaxed);
    return t;
}

std::uint64_t monotonic_us() noexcept {
    timespec ts{};
    (void)::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000U +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000U;
}

void Shard::count_turn(std::uint64_t us) noexcept {
    busy_us_.store(busy_us_.load(std::memory_order_relaxed) + us, std::memory_order_relaxed);
    if (us < turn_bounds_us[0]) {
        return; // the common case: two clock reads per turn, nothing stored
    }
    for (std::size_t i = 0; i < turn_bounds_us.size() && us >= turn_bounds_us[i]; ++i) {
        turns_from_[i].fetch_add(1, std::memory_order_relaxed);
    }
    if (us > longest_turn_us_.load(std::memory_order_relaxed)) {
        longest_turn_us_.store(us, std::memory_order_relaxed);
    }
}

void Shard::run() noexcept {
    RP_ASSERT(tl_current == this);
    std::uint64_t turn_start = monotonic_us();
    for (;;) {
        drain_inbox();
        if (stopping() && inflight_ == 0) {
            bool empty;
            {
                std::lock_guard lk(inbox_mu_);
                empty = inbox_.empty();
            }
            if (empty) {
                break;
            }
            continue;
        }
        if (stopping() && !cancelled_all_) {
            // Whatever is still in flight (a stalled client's recv, a
            // timer) is cancelled now; the flows see -ECANCELED and unwind.
            // Kernels before 5.19 refuse CANCEL_ANY (-EINVAL): there the
            // flows end at their own timeouts, as before.
            cancelled_all_ = true;
            io_uring_sqe* c = sqe();
            io_uring_prep_cancel(c, nullptr, IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data(c, nullptr);
        }
        arm_wake();
        count_turn(monotonic_us() - turn_start);
        int r = io_uring_submit_and_wait(&ring_, 1);
        turn_start = monotonic_us();
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
            util::fatal("io_uring_submit_and_wait", r);
        }
        reap();
    }
    // Flush anything prepared but not submitted; the wake read is cancelled
    // when the ring is torn down in the destructor.
    (void)io_uring_submit(&ring_);
}

} // namespace rp::reactor
