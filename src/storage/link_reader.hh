// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <liburing.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.hh"

namespace rp::storage {

// Reads many small files (link files) with many reads in flight, for the
// startup rebuild: each file is one linked chain openat(direct) → read →
// close(direct) on a private io_uring, so one round trip covers a file and a
// cold page cache is read with the device's parallelism instead of one
// blocking read at a time. Runs on a rebuild thread, never on a shard.
class LinkReader {
  public:
    // `done` gets the file's bytes (at most 255), or nothing if unreadable.
    using Done = std::function<void(std::string_view bytes, bool ok)>;

    explicit LinkReader(int dirfd, unsigned depth = 64);
    ~LinkReader();
    LinkReader(const LinkReader&) = delete;
    LinkReader& operator=(const LinkReader&) = delete;

    util::Result<void> init();
    // Queues a read of `path` relative to `dirfd` (which must stay open
    // until `done` ran); blocks, reaping completions, while every slot is busy.
    void read(int dirfd, std::string path, Done done);
    void read(std::string path, Done done) { read(dirfd_, std::move(path), std::move(done)); }
    // Waits for every queued read.
    void finish();

  private:
    struct Slot {
        int dirfd = -1;
        std::string path;
        Done done;
        char buf[256];
        int read_res = 0;
        unsigned cqes_left = 0;
        bool busy = false;
    };
    void submit_chain(unsigned slot);
    void reap(bool wait);
    void complete(unsigned slot);

    int dirfd_;
    unsigned depth_;
    io_uring ring_{};
    bool ready_ = false;
    std::vector<Slot> slots_;
    std::vector<unsigned> free_;
};

} // namespace rp::storage
