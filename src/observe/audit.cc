// SPDX-License-Identifier: Apache-2.0
#include "observe/audit.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "observe/event.hh"
#include "util/strings.hh"

namespace rp::observe {

using util::Error;
using util::Result;

namespace {

void str(std::string& o, std::string_view k, std::string_view v) {
    o += ",\"";
    o += k;
    o += "\":\"";
    util::json_escape(o, v);
    o += '"';
}

void opt(std::string& o, std::string_view k, std::string_view v) {
    if (!v.empty()) {
        str(o, k, v);
    }
}

constexpr std::size_t pending_bytes_max = 64U << 20U;

int open_log(const std::string& path) {
    return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

} // namespace

std::string audit_line(const AuditRecord& r, std::int64_t time_ns) {
    std::string o;
    o.reserve(384);
    o += "{\"time\":\"";
    o += rfc3339_nano(time_ns);
    o += '"';
    str(o, "action", r.action);
    str(o, "outcome", r.outcome);
    if (r.status != 0) {
        o += ",\"status\":";
        o += std::to_string(r.status);
    }
    opt(o, "error", r.error);
    str(o, "user", r.user);
    opt(o, "certificate", r.certificate);
    opt(o, "addr", r.addr);
    opt(o, "request_id", r.request_id);
    opt(o, "method", r.method);
    opt(o, "repository", r.repository);
    opt(o, "reference", r.reference);
    opt(o, "digest", r.digest);
    if (r.size != 0) {
        o += ",\"size\":";
        o += std::to_string(r.size);
    }
    opt(o, "media_type", r.media_type);
    opt(o, "from", r.from);
    opt(o, "detail", r.detail);
    o += "}\n";
    return o;
}

Result<std::unique_ptr<AuditLog>> AuditLog::open(std::string path) {
    util::UniqueFd fd(open_log(path));
    if (!fd.valid()) {
        return Error::sys(errno, "open the audit log " + path);
    }
    return std::unique_ptr<AuditLog>(new AuditLog(std::move(path), std::move(fd)));
}

void AuditLog::write(const AuditRecord& r) {
    std::string line = audit_line(r, now_ns());
    {
        std::lock_guard lk(mu_);
        if (!closed_ && pending_.size() + line.size() > pending_bytes_max) {
            dropped_.fetch_add(1, std::memory_order_relaxed); // the disk cannot keep up
            return;
        }
        if (!closed_) {
            pending_ += line;
            ++pending_n_;
            cv_.notify_one();
            return;
        }
    }
    std::lock_guard wl(wmu_); // the writer has ended: write now
    write_out(line);
    records_.fetch_add(1, std::memory_order_relaxed);
}

void AuditLog::reopen() noexcept {
    std::lock_guard lk(mu_);
    reopen_ = true;
    cv_.notify_one();
}

void AuditLog::write_out(const std::string& buf) noexcept {
    // After a write that failed part way, a line end first: the fragment
    // stays a line of its own instead of spoiling the next record.
    std::string fixed;
    const std::string* out = &buf;
    if (torn_) {
        fixed.reserve(buf.size() + 1);
        fixed.push_back('\n');
        fixed += buf;
        out = &fixed;
    }
    const char* p = out->data();
    std::size_t n = out->size();
    for (int i = 0; n > 0 && i < 1'000'000; ++i) {
        ssize_t w = ::write(fd_.get(), p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            errors_.fetch_add(1, std::memory_order_relaxed);
            torn_ = n != out->size();
            return;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    torn_ = false;
    // Synced about once a second, not per batch: an fdatasync forces a
    // journal commit, which the uploads' own syncs then queue behind
    // (measured: pushes 8% slower with a sync per batch).
    const auto now = std::chrono::steady_clock::now();
    if (now - synced_at_ >= std::chrono::seconds(1)) {
        (void)::fdatasync(fd_.get());
        synced_at_ = now;
    }
}

void AuditLog::run(const std::atomic<bool>& stop) noexcept {
    std::string buf;
    for (std::uint64_t turn = 0; turn < (1ULL << 62); ++turn) {
        bool reopen = false;
        bool stopping = false;
        std::uint64_t n = 0;
        // Held from before the queue is taken, so a record written at once
        // after `closed_` cannot land ahead of the queue's.
        std::lock_guard wl(wmu_);
        {
            std::unique_lock lk(mu_);
            // Bounded wait: the stop flag has no notification of its own.
            cv_.wait_for(lk, std::chrono::milliseconds(100),
                         [&] { return !pending_.empty() || reopen_ || stop.load(); });
            stopping = stop.load();
            reopen = reopen_;
            reopen_ = false;
            buf.swap(pending_);
            n = pending_n_;
            pending_n_ = 0;
            if (stopping) {
                closed_ = true;
            }
        }
        if (reopen) {
            if (int fd = open_log(path_); fd >= 0) {
                fd_.reset(fd);
                torn_ = false;
            } else {
                errors_.fetch_add(1, std::memory_order_relaxed);
            }
        }
        if (!buf.empty()) {
            write_out(buf);
            records_.fetch_add(n, std::memory_order_relaxed);
            buf.clear();
        }
        if (stopping) {
            (void)::fdatasync(fd_.get());
            return;
        }
    }
}

} // namespace rp::observe
