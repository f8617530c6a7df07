// SPDX-License-Identifier: Apache-2.0
#pragma once

// The audit log: one JSON line per write, delete, retention or GC
// deletion, refused authentication or authorisation, and admin action, in
// an append-only file of its own (not the access log). Lines are queued
// from any thread and written by one writer thread within 100 ms, and
// synced to disk about once a second and at a stop. reopen() (SIGHUP)
// makes the writer open the path again, after logrotate moved the file.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::observe {

struct AuditRecord {
    std::string_view action;      // push, mount, delete, retention-delete, gc-delete,
                                  // authenticate, authorize, admin
    std::string_view outcome;     // ok, denied, failed, error
    int status = 0;               // the HTTP status answered (0: no request)
    std::string_view error;       // the OCI error code or a reason, when not ok
    std::string_view user;        // user name or token subject ("" anonymous)
    std::string_view certificate; // the client certificate's subject (mTLS)
    std::string_view addr;        // the client's address
    std::string_view request_id;  // as the access log has it
    std::string_view method;
    std::string_view repository;
    std::string_view reference; // a tag, or a digest
    std::string_view digest;
    std::uint64_t size = 0;
    std::string_view media_type;
    std::string_view from;   // a mount's source repository
    std::string_view detail; // what an admin action asked
};

// The record's line (with its newline), stamped `time_ns`.
std::string audit_line(const AuditRecord& r, std::int64_t time_ns);

class AuditLog {
  public:
    // Opens (creates, mode 0640) `path` for appending.
    static util::Result<std::unique_ptr<AuditLog>> open(std::string path);
    // Any thread: queues the record's line.
    void write(const AuditRecord& r);
    // Any thread: the writer opens the path again before its next write.
    void reopen() noexcept;
    // The writer thread's body (Runtime::spawn_thread): until `stop`, then
    // writes what is queued. Records after that are written at once.
    void run(const std::atomic<bool>& stop) noexcept;
    std::uint64_t records() const noexcept { return records_.load(std::memory_order_relaxed); }
    std::uint64_t errors() const noexcept { return errors_.load(std::memory_order_relaxed); }
    // Records dropped because 64 MiB of them were waiting for the disk.
    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    const std::string& path() const noexcept { return path_; }

  private:
    explicit AuditLog(std::string path, util::UniqueFd fd) noexcept
        : path_(std::move(path)), fd_(std::move(fd)) {}
    void write_out(const std::string& buf) noexcept; // under wmu_
    std::string path_;
    std::mutex wmu_;
    util::UniqueFd fd_;                                 // wmu_
    bool torn_ = false;                                 // the last write failed part way (wmu_)
    std::chrono::steady_clock::time_point synced_at_{}; // the last fdatasync (wmu_)
    std::mutex mu_;
    std::condition_variable cv_;
    std::string pending_;         // mu_
    std::uint64_t pending_n_ = 0; // mu_
    bool reopen_ = false;         // mu_
    bool closed_ = false;         // mu_
    std::atomic<std::uint64_t> records_{0};
    std::atomic<std::uint64_t> errors_{0};
    std::atomic<std::uint64_t> dropped_{0};
};

} // namespace rp::observe
