// SPDX-License-Identifier: Apache-2.0
// The upload pipeline: receive into one buffer while the previous one is
// written, hash each buffer once just before its write (so the hash always
// describes exactly the bytes handed to the file), and start writeback every
// few MiB so the fsync at commit has little left to flush.
#include "storage/receive.hh"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "reactor/ops.hh"
#include "reactor/sync.hh"
#include "storage/layout.hh"
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
    struct Free {
        char* p;
        bool lazy; // given to the kernel (MADV_FREE) and not written since
    };
    std::vector<Free> free; // the most recently returned last
    std::size_t lent = 0;
    std::uint64_t given_back = 0;
    Pool() { free.reserve(ReceiveBuffers::cached_max); }
    ~Pool() {
        for (const Free& f : free) {
            unmap(f.p);
        }
    }
};

Pool& pool() {
    thread_local Pool p;
    return p;
}

constexpr std::uint64_t writeback_every_bytes = 8u << 20;

} // namespace

Upload::~Upload() {
    // A session released for being idle, or dropped without cancel_upload.
    if (fd >= 0) {
        (void)::close(fd);
    }
    if (dfd >= 0) {
        (void)::close(dfd);
    }
}

void ReceiveBuffers::Deleter::operator()(char* p) const noexcept {
    Pool& pl = pool();
    RP_ASSERT(pl.lent > 0);
    --pl.lent;
    if (pl.free.size() < cached_max) {
        pl.free.push_back({p, false});
    } else {
        unmap(p);
    }
    if (pl.lent == 0) {
        // Idle: the kernel may take back all but the idle_cached_max most
        // recently used buffers' pages whenever it needs memory. Until it
        // does, the next upload reuses them with no fault and no zeroing: a
        // chunked push returns its buffers after every PATCH, and remapping
        // them each time cost 8% of its throughput. Each buffer is given
        // only once until it is written again: a madvise runs on the shard
        // and flushes the other CPUs' TLBs; repeated after every upload of a
        // one-at-a-time pusher it took 3 ms of the shard's turn at times.
        std::size_t keep = std::min(idle_cached_max, pl.free.size());
        for (std::size_t k = 0; k + keep < pl.free.size(); ++k) {
            if (!pl.free[k].lazy) {
                (void)::madvise(pl.free[k].p, buffer_bytes, MADV_FREE);
                pl.free[k].lazy = true;
                ++pl.given_back;
            }
        }
    }
}

std::uint64_t ReceiveBuffers::given_back() noexcept { return pool().given_back; }

ReceiveBuffers::Lease ReceiveBuffers::take() noexcept {
    Pool& pl = pool();
    if (pl.lent >= lent_max) {
        return Lease(nullptr);
    }
    ++pl.lent;
    if (!pl.free.empty()) {
        char* p = pl.free.back().p; // the most recently used: its pages are likeliest resident
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

// O_DIRECT needs the file offset, the length and the memory address aligned
// to the device's logical block; 4 KiB covers 512-byte and 4Kn devices.
constexpr std::size_t direct_align = 4096;

// One piece handed to the file: `total` bytes from `off`; the aligned middle
// is the pending op (direct, or the whole piece when buffered), the tail
// (direct only) is written buffered once the middle is done.
struct Store::Piece {
    reactor::PendingOp write;
    bool direct = false;
    std::size_t total = 0;
    const char* mid = nullptr;
    std::size_t mid_len = 0;
    std::uint64_t mid_off = 0;
    const char* tail = nullptr;
    std::size_t tail_len = 0;
};

// State of one pipelined receive; lives in Store::receive's frame.
struct Store::Pipeline {
    Upload& u;
    ByteSource& src;
    std::uint64_t max_bytes;
    int dfd = -1;                // the data file opened O_DIRECT, or -1: buffered through u.fd
    std::uint64_t in_flight = 0; // bytes handed to pieces not finished yet
    bool failed = false;         // a piece failed: later pieces no longer count
    bool direct_refused = false; // EINVAL on a direct write: close u.dfd once all are done
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
        if (p.u.offset.load() + p.in_flight + n + *r > p.max_bytes) {
            *got = n;
            co_return Error::of(Errc::too_large, "blob exceeds the configured maximum size");
        }
        n += *r;
    }
    *got = n;
    co_return false;
}

// Waits for a piece, writes its tail and accounts for it. Pieces are
// finished in the order they were started, so the offset only grows over
// bytes that are all in the file.
Task<Result<void>> Store::finish_write(Pipeline& p, Piece& w) noexcept {
    if (w.total == 0) {
        co_return util::Ok{};
    }
    Result<void> r = util::Ok{};
    if (w.write.active()) {
        int res = co_await w.write.wait();
        if (res == -EINVAL && w.direct) {
            // The file system refused this direct write: write it buffered,
            // and the rest of this body too. The descriptor is closed only
            // after every piece is done (a newer write may not even be
            // submitted yet, and a reused number would receive it).
            res = 0;
            p.dfd = -1;
            p.direct_refused = true;
        }
        if (res < 0) {
            r = Error::sys(res, "write upload data");
        } else if (static_cast<std::size_t>(res) < w.mid_len) { // rare: finish it plainly
            auto done = static_cast<std::size_t>(res);
            r = co_await fs_.write_all(p.u.fd, w.mid + done, w.mid_len - done, w.mid_off + done);
        }
    }
    if (r && w.tail_len > 0) {
        r = co_await fs_.write_all(p.u.fd, w.tail, w.tail_len, w.mid_off + w.mid_len);
    }
    p.in_flight -= w.total;
    if (!r) {
        p.failed = true;
    } else if (!p.failed) {
        // In order: every earlier piece is in the file. After a failed
        // piece nothing more counts (the caller cancels the session).
        p.u.landed(p.u.offset.fetch_add(w.total) + w.total);
    }
    w.total = 0;
    w.tail_len = 0;
    co_return r;
}

// Starts writing `got` bytes at `data` (file offset `off`). Direct: the bytes
// before the first aligned offset are written buffered first (they sit below
// the buffer's first aligned address, see receive), the aligned middle goes
// out as the pending op, the tail is left to finish_write.
Task<Result<void>> Store::start_write(Pipeline& p, Piece& w, const char* data, std::size_t got,
                                      std::uint64_t off) noexcept {
    std::size_t head = 0;
    if (p.dfd >= 0 && off % direct_align != 0) {
        head = std::min<std::size_t>(got, direct_align - off % direct_align);
        auto r = co_await fs_.write_all(p.u.fd, data, head, off);
        if (!r) {
            co_return r;
        }
    }
    w.total = got;
    p.in_flight += got;
    w.direct = p.dfd >= 0;
    w.mid = data + head;
    w.mid_off = off + head;
    std::size_t rest = got - head;
    w.mid_len = w.direct ? rest / direct_align * direct_align : rest;
    w.tail = w.mid + w.mid_len;
    w.tail_len = rest - w.mid_len;
    if (w.mid_len > 0) {
        int fd = w.direct ? p.dfd : p.u.fd;
        const char* mid = w.mid;
        auto len = static_cast<unsigned>(w.mid_len);
        std::uint64_t at = w.mid_off;
        w.write.start([=](io_uring_sqe* s) { io_uring_prep_write(s, fd, mid, len, at); });
    }
    if (!w.direct) {
        maybe_writeback(p, off + got);
    }
    co_return util::Ok{};
}

// Starts writeback of what was written since the last time, every few MiB,
// without waiting for it: the fsync at commit waits for whatever is left, so
// a PATCH answers as soon as its last write is in the page cache. (Direct
// writes need none: their bytes are on the device when they complete.)
void Store::maybe_writeback(Pipeline& p, std::uint64_t upto) noexcept {
    if (upto <= p.u.written_back || upto - p.u.written_back < writeback_every_bytes) {
        return;
    }
    int fd = p.u.fd;
    std::uint64_t from = p.u.written_back;
    auto len = static_cast<unsigned>(upto - from);
    reactor::detach([=](io_uring_sqe* s) {
        io_uring_prep_sync_file_range(s, fd, len, from, SYNC_FILE_RANGE_WRITE);
    });
    p.u.written_back = upto;
}

// Receives the body into buffers in turn: while one is filled from the
// socket, the previous one is hashed and written. Uploads write with O_DIRECT
// where the file system allows it: on a VM the page-cache path (copy into
// freshly allocated pages, then writeback) ran at about 370 MB/s where direct
// writes of the same buffers reach the device's 1.8 GB/s, and the buffers
// (reused, already mapped) are never copied.
//
// SHA-256 (0.55 ns/byte) is most of a stream's cost. When no other upload is
// receiving on this shard, the pieces are hashed by the shard's hash worker
// on the other core while the shard receives the next ones (three buffers,
// so the worker always has the next piece queued); with several uploads the
// shards are busy anyway and hash inline (a hand-off would only add cost).
Task<Result<void>> Store::receive(Upload& u, ByteSource& src) noexcept {
    RP_ASSERT(u.busy);
    if (u.progress != nullptr) {
        // Readers follow the file: each piece must count as soon as it is
        // written, not two pieces later behind the pipeline's writes in
        // flight (whose pieces fill whole buffers first).
        co_return co_await receive_plain(u, src);
    }
    bool offload = pool().lent == 0;
    ReceiveBuffers::Lease bufs[3] = {ReceiveBuffers::take(), ReceiveBuffers::take(),
                                     offload ? ReceiveBuffers::take() : nullptr};
    if (!bufs[0] || !bufs[1]) {
        co_return co_await receive_plain(u, src); // pool exhausted: no pipelining
    }
    offload = offload && bufs[2];
    const int nbufs = offload ? 3 : 2;
    const std::size_t piece_bytes =
        offload ? ReceiveBuffers::buffer_bytes : ReceiveBuffers::shared_piece_bytes;
    // Opened once per session (a chunked push sends many PATCHes).
    if (u.dfd < 0 && direct_writes_.load(std::memory_order_relaxed)) {
        auto d = co_await fs_.open(layout::upload_data(u.repo, u.uuid), O_WRONLY | O_DIRECT);
        if (d) {
            u.dfd = *d;
        } else if (d.error().sys_errno == EINVAL) {
            direct_writes_ = false; // the file system has no O_DIRECT
        }
    }
    Pipeline p{u, src, cfg_.blob_bytes_max, u.dfd};
    // Per buffer: the pending hash of its piece and the piece's write. Up to
    // nbufs - 1 writes are in flight while the next buffer fills, so the
    // device's latency is not on the stream's critical path.
    std::shared_ptr<reactor::Latch> hashed[3];
    Piece pieces[3];
    Result<void> result = util::Ok{}; // how the body ended (a read error, or too large)
    Result<void> werr = util::Ok{};   // the first write error: it wins, the caller cancels
    int i = 0;
    for (;; ++i) {
        const int cur = i % nbufs;
        if (hashed[cur]) {
            co_await hashed[cur]->wait();
            hashed[cur].reset();
        }
        if (auto w = co_await finish_write(p, pieces[cur]); !w) { // the oldest piece
            werr = std::move(w);
            break;
        }
        // With direct writes the bytes land at the buffer position that
        // matches their file offset's alignment, so the aligned part of the
        // file is an aligned part of the buffer (only a body's first piece
        // can start unaligned; full pieces end aligned).
        std::uint64_t off = u.offset.load() + p.in_flight;
        std::size_t skew = p.dfd >= 0 ? off % direct_align : 0;
        char* buf = bufs[cur].get() + skew;
        std::size_t got = 0;
        auto filled = co_await fill(p, buf, piece_bytes - skew, &got);
        // Hash only what will be written: the hash always matches the file.
        // A body that fits one piece is hashed inline (nothing to overlap).
        bool whole = i == 0 && filled && *filled;
        if (offload && !whole && got > 0) {
            hashed[cur] = std::make_shared<reactor::Latch>();
            // The shard's companion thread hashes pieces strictly in the
            // order they were queued, so one upload's hash sees them in order.
            reactor::Shard::current()->companion().submit(
                [h = &u.sha256, buf, got, done = hashed[cur]] {
                    h->update(buf, got);
                    done->set();
                });
        } else {
            u.sha256.update(buf, got);
        }
        if (got > 0) {
            if (auto w = co_await start_write(p, pieces[cur], buf, got, off); !w) {
                werr = std::move(w);
                break;
            }
        }
        if (!filled) {
            result = std::move(filled).error();
            break;
        }
        if (*filled) {
            break;
        }
    }
    // Finish every piece still in flight, oldest first; they and the hashes
    // use buffers this frame owns.
    for (int k = 1; k <= nbufs; ++k) {
        auto w = co_await finish_write(p, pieces[(i + k) % nbufs]);
        if (!w && werr) {
            werr = std::move(w);
        }
    }
    for (auto& h : hashed) {
        if (h) {
            co_await h->wait();
        }
    }
    if (p.direct_refused && u.dfd >= 0) {
        co_await fs_.close(std::exchange(u.dfd, -1));
        direct_writes_ = false; // this file system takes no direct writes
    }
    co_return !werr ? std::move(werr) : std::move(result);
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
