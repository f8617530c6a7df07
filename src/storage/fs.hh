// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <linux/stat.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "reactor/task.hh"
#include "util/result.hh"

namespace rp::storage {

// Asynchronous file operations through the shard's ring, all relative to one
// directory fd (the v2 dir). Paths come from storage/layout only.
class Fs {
  public:
    explicit Fs(int dirfd) noexcept : dirfd_(dirfd) {}
    int dirfd() const noexcept { return dirfd_; }

    reactor::Task<util::Result<int>> open(std::string path, int flags, unsigned mode = 0) noexcept;
    reactor::Task<void> close(int fd) noexcept;
    reactor::Task<util::Result<struct statx>> stat(std::string path) noexcept;
    reactor::Task<util::Result<struct statx>> fstat(int fd) noexcept;
    // Reads a whole small file (a link, a manifest); too_large past `max_bytes`.
    reactor::Task<util::Result<std::string>> read_file(std::string path,
                                                       std::size_t max_bytes) noexcept;
    reactor::Task<util::Result<void>> read_exact(int fd, char* buf, std::size_t len,
                                                 std::uint64_t off) noexcept;
    reactor::Task<util::Result<void>> write_all(int fd, const char* data, std::size_t len,
                                                std::uint64_t off) noexcept;
    reactor::Task<util::Result<void>> fsync(int fd) noexcept;
    reactor::Task<util::Result<void>> fsync_dir(std::string dir) noexcept;
    // mkdir -p; when `durable`, every directory it creates is made durable
    // (its parent fsynced). The upload area is scratch space and skips that.
    reactor::Task<util::Result<void>> mkdirs(std::string dir, bool durable = true) noexcept;
    // Writes a small file in place, not durably (scratch files: startedat).
    reactor::Task<util::Result<void>> write_file(std::string path, std::string bytes) noexcept;
    // Writes a small file durably: <path>.<random>.tmp, fsync, rename, fsync dir.
    reactor::Task<util::Result<void>> write_atomic(std::string path, std::string bytes) noexcept;
    // Renames within the tree and fsyncs the target's directory.
    reactor::Task<util::Result<void>> rename_durable(std::string from, std::string to) noexcept;
    reactor::Task<util::Result<void>> unlink(std::string path) noexcept;
    // Sets the file's modification time to now (on the blocking pool).
    reactor::Task<util::Result<void>> touch(std::string path) noexcept;
    reactor::Task<util::Result<void>> rmdir(std::string path) noexcept;
    // Removes a directory tree on a helper thread (no io_uring op walks dirs).
    reactor::Task<util::Result<void>> remove_tree(std::string path) noexcept;

  private:
    int dirfd_;
};

// Blocking helpers for helper threads and startup (never on a serving shard).
namespace blocking {
util::Result<void> remove_tree(int dirfd, const std::string& path);
util::Result<std::string> read_file(int dirfd, const std::string& path, std::size_t max_bytes);
// Writes all of `bytes` at `off` (pwrite, retried on EINTR and short writes).
util::Result<void> write_all(int fd, std::string_view bytes, std::uint64_t off);
} // namespace blocking

// Random identifiers: an RFC 4122 v4 UUID and a temp-file suffix.
std::string new_uuid();
std::string random_suffix();

} // namespace rp::storage
