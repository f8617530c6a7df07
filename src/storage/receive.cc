// SPDX-License-Identifier: Apache-2.0
// The upload pipeline: receive into one buffer while the previous one is
// written, hash each buffer once just before its write (so the hash always
// describes exactly the bytes handed to the file), and start writeback every
// few MiB so the fsync at commit has little left to flush.
#include "storage/receive.hh"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <vector>

#include "reactor/ops.hh"
#include "storage/store.hh"
#include "util/assert.hh"

namespace rp::storage {

using reactor::Task;
using util::Errc;
using util::Error;
using util::Result;

namespace {

void unmap(char* p) noexcept { (void)::munmap(p, ReceiveBuffers::buffer_bytes); }

struct Pool {
    std::vector<char*> free;
    std::size_t lent = 0;
    Pool() { free.reserve(ReceiveBuffers::cached_max); }
    ~Pool() {
        for (char* p : free) {
            unmap(p);
        }
    }
};

Pool& pool() {
    thread_local Pool p;
    return p;
}

constexpr std::uint64_t writeback_every_bytes = 8u << 20;

} // namespace

void ReceiveBuffers::Deleter::operator()(char* p) const noexcept {
    Pool& pl = pool();
    RP_ASSERT(pl.lent > 0);
    --pl.lent;
    std::size_t keep = pl.lent == 0 ? idle_cached_max : cached_max;
    if (pl.free.size() < keep) {
        pl.free.push_back(p);
    } else {
        unmap(p);
    }
    while (pl.free.size() > keep) {
        unmap(pl.free.back());
        pl.free.pop_back();
    }
}

ReceiveBuffers::Lease ReceiveBuffers::take() noexcept {
    Pool& pl = pool();
    if (pl.lent >= lent_max) {
        return Lease(nullptr);
    }
    ++pl.lent;
    if (!pl.free.empty()) {
        char* p = pl.free.back();
        pl.free.pop_back();
        return Lease(p);
    }
    // Out of memory is unrecoverable here (STYLE §3): abort.
    void* p =
        ::mmap(nullptr, buffer_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        util::fatal("receive buffer", ENOMEM);
    }
    return Lease(static_cast<char*>(p));
}

// State of one pipelined receive; lives in Store::receive's frame.
struct Store::Pipeline {
    Upload& u;
    ByteSource& src;
    std::uint64_t max_bytes;
    reactor::PendingOp write;
    std::size_t write_len = 0;
};

// Fills `buf` from the source until it is full or the body ends. `got`
// receives the byte count; an error keeps the bytes received before it.
Task<Result<bool>> Store::fill(Pipeline& p, char* buf, std::size_t cap, std::size_t* got) noexcept {
    std::size_t n = 0;
    for (int i = 0; n < cap; ++i) {
        auto r = co_await p.src.read(buf + n, cap - n);
        if (!r) {
            *got = n;
            co_return std::move(r).error();
        }
        if (*r == 0) {
            *got = n;
            co_return true; // the end of the body
        }
        if (p.u.offset.load() + p.write_len + n + *r > p.max_bytes) {
            *got = n;
            co_return Error::of(Errc::too_large, "blob exceeds the configured maximum size");
        }
        n += *r;
    }
    *got = n;
    co_return false;
}

// Waits for the write in flight, if any, and accounts for it.
Task<Result<void>> Store::finish_write(Pipeline& p, const char* buf) noexcept {
    if (!p.write.active()) {
        co_return util::Ok{};
    }
    int res = co_await p.write.wait();
    std::uint64_t off = p.u.offset.load();
    std::size_t len = std::exchange(p.write_len, 0);
    if (res < 0) {
        co_return Error::sys(res, "write upload data");
    }
    if (static_cast<std::size_t>(res) < len) { // rare: finish it plainly
        auto w = co_await fs_.write_all(p.u.fd, buf + res, len - static_cast<std::size_t>(res),
                                        off + static_cast<std::uint64_t>(res));
        if (!w) {
            co_return w;
        }
    }
    p.u.offset.fetch_add(len);
    co_return util::Ok{};
}

// Starts writeback of what was written since the last time, every few MiB,
// without waiting for it: the fsync at commit waits for whatever is left, so
// a PATCH answers as soon as its last write is in the page cache.
void Store::maybe_writeback(Pipeline& p) noexcept {
    std::uint64_t done = p.u.offset.load();
    if (done - p.u.written_back < writeback_every_bytes) {
        return;
    }
    int fd = p.u.fd;
    std::uint64_t from = p.u.written_back;
    auto len = static_cast<unsigned>(done - from);
    reactor::detach([=](io_uring_sqe* s) {
        io_uring_prep_sync_file_range(s, fd, len, from, SYNC_FILE_RANGE_WRITE);
    });
    p.u.written_back = done;
}

Task<Result<void>> Store::receive(Upload& u, ByteSource& src) noexcept {
    RP_ASSERT(u.busy);
    ReceiveBuffers::Lease bufs[2] = {ReceiveBuffers::take(), ReceiveBuffers::take()};
    if (!bufs[0] || !bufs[1]) {
        co_return co_await receive_plain(u, src); // pool exhausted: no pipelining
    }
    Pipeline p{u, src, cfg_.blob_bytes_max, {}, 0};
    Result<void> result = util::Ok{};
    for (int cur = 0;; cur ^= 1) {
        std::size_t got = 0;
        auto filled = co_await fill(p, bufs[cur].get(), ReceiveBuffers::buffer_bytes, &got);
        // Hash only what will be written: the hash always matches the file.
        u.sha256.update(bufs[cur].get(), got);
        auto w = co_await finish_write(p, bufs[cur ^ 1].get());
        if (w && got > 0) {
            int fd = u.fd;
            const char* data = bufs[cur].get();
            std::uint64_t off = u.offset.load();
            p.write_len = got;
            p.write.start([=](io_uring_sqe* s) {
                io_uring_prep_write(s, fd, data, static_cast<unsigned>(got), off);
            });
            maybe_writeback(p);
        }
        if (!w || !filled || *filled) {
            auto last = co_await finish_write(p, bufs[cur].get());
            result = !w ? std::move(w) : (!filled ? Result<void>(std::move(filled).error()) : last);
            break;
        }
    }
    co_return result;
}

// The sequential path: one 64 KiB buffer, hash and write each piece.
Task<Result<void>> Store::receive_plain(Upload& u, ByteSource& src) noexcept {
    std::vector<char> buf(64u << 10);
    for (;;) {
        auto r = co_await src.read(buf.data(), buf.size());
        if (!r) {
            co_return std::move(r).error();
        }
        if (*r == 0) {
            co_return util::Ok{};
        }
        auto a = co_await append(u, std::span<const char>(buf.data(), *r));
        if (!a) {
            co_return a;
        }
    }
}

} // namespace rp::storage
