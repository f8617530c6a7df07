// SPDX-License-Identifier: Apache-2.0
#include "storage/link_reader.hh"

#include <fcntl.h>

#include <cerrno>

#include "util/assert.hh"

namespace rp::storage {

namespace {
// user_data: slot index in the low 32 bits, the chain step in the high ones.
constexpr std::uint64_t step_open = 1, step_read = 2, step_close = 3;

std::uint64_t tag(unsigned slot, std::uint64_t step) { return (step << 32) | slot; }
} // namespace

LinkReader::LinkReader(int dirfd, unsigned depth) : dirfd_(dirfd), depth_(depth), slots_(depth) {}

LinkReader::~LinkReader() {
    if (ready_) {
        finish();
        io_uring_queue_exit(&ring_);
    }
}

util::Result<void> LinkReader::init() {
    // Three SQEs per file, all in flight at once.
    int r = io_uring_queue_init(depth_ * 4, &ring_, 0);
    if (r < 0) {
        return util::Error::sys(r, "io_uring_queue_init (rebuild)");
    }
    ready_ = true;
    r = io_uring_register_files_sparse(&ring_, depth_);
    if (r < 0) {
        return util::Error::sys(r, "io_uring_register_files_sparse");
    }
    // Opens and reads of regular files run on io-wq's "bounded" workers,
    // by default at most 4 per CPU: too few to keep a cold disk busy when
    // each open walks a path one blocking read at a time. Allow one per slot.
    unsigned workers[2] = {depth_, 0};
    (void)io_uring_register_iowq_max_workers(&ring_, workers); // advisory
    for (unsigned i = 0; i < depth_; ++i) {
        free_.push_back(depth_ - 1 - i);
    }
    return util::Ok{};
}

void LinkReader::submit_chain(unsigned s) {
    Slot& slot = slots_[s];
    io_uring_sqe* open = io_uring_get_sqe(&ring_);
    io_uring_sqe* rd = io_uring_get_sqe(&ring_);
    io_uring_sqe* cl = io_uring_get_sqe(&ring_);
    RP_ASSERT(open != nullptr && rd != nullptr && cl != nullptr); // the SQ holds 4 per slot
    // No O_CLOEXEC: a direct descriptor is not in the fd table (EINVAL if set).
    io_uring_prep_openat_direct(open, slot.dirfd, slot.path.c_str(), O_RDONLY, 0, s);
    open->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(open, tag(s, step_open));
    io_uring_prep_read(rd, static_cast<int>(s), slot.buf, sizeof slot.buf - 1, 0);
    // A hard link: the close runs even when the read failed, so the slot is
    // always free again (after a failed open it fails harmlessly, EBADF).
    rd->flags |= IOSQE_IO_HARDLINK | IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(rd, tag(s, step_read));
    io_uring_prep_close_direct(cl, s);
    io_uring_sqe_set_data64(cl, tag(s, step_close));
    slot.cqes_left = 3;
    slot.read_res = -ECANCELED;
    slot.busy = true;
}

void LinkReader::complete(unsigned s) {
    Slot& slot = slots_[s];
    bool ok = slot.read_res >= 0;
    std::string_view bytes(slot.buf, ok ? static_cast<std::size_t>(slot.read_res) : 0);
    Done done = std::move(slot.done);
    slot.busy = false;
    slot.path.clear();
    free_.push_back(s);
    done(bytes, ok);
}

void LinkReader::reap(bool wait) {
    io_uring_submit(&ring_);
    io_uring_cqe* cqe = nullptr;
    if (wait) {
        int r = io_uring_wait_cqe(&ring_, &cqe);
        if (r < 0 && r != -EINTR) {
            util::fatal("io_uring_wait_cqe (rebuild)", r);
        }
    }
    unsigned head = 0;
    unsigned n = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
        std::uint64_t ud = io_uring_cqe_get_data64(cqe);
        auto s = static_cast<unsigned>(ud & 0xffffffffu);
        if ((ud >> 32) == step_read) {
            slots_[s].read_res = cqe->res;
        }
        ++n;
        if (--slots_[s].cqes_left == 0) {
            complete(s);
        }
    }
    io_uring_cq_advance(&ring_, n);
}

void LinkReader::read(int dirfd, std::string path, Done done) {
    while (free_.empty()) {
        reap(true);
    }
    unsigned s = free_.back();
    free_.pop_back();
    slots_[s].dirfd = dirfd;
    slots_[s].path = std::move(path);
    slots_[s].done = std::move(done);
    submit_chain(s);
    if (free_.empty()) {
        io_uring_submit(&ring_);
    }
}

void LinkReader::finish() {
    while (free_.size() < depth_) {
        reap(true);
    }
}

} // namespace rp::storage
