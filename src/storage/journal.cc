// SPDX-License-Identifier: Apache-2.0
#include "storage/journal.hh"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "reactor/ops.hh"
#include "reactor/sync.hh"
#include "storage/fs.hh"
#include "storage/names.hh"
#include "storage/snapshot.hh"

namespace rp::storage {

using reactor::Task;
using util::Errc;
using util::Error;
using util::Result;

namespace {

constexpr std::size_t journal_bytes_max = std::size_t{1} << 30;

const std::string& main_name() {
    static const std::string s(journal_file);
    return s;
}

const std::string& new_name() {
    static const std::string s(journal_new_file);
    return s;
}

// A torn tail (a record whose fsync never finished) or the zeros of a
// record reserved but not written yet are not valid names: skipped.
void split_names(std::string_view bytes, std::vector<std::string>& out) {
    while (!bytes.empty()) {
        std::size_t nl = bytes.find('\n');
        std::string_view line = bytes.substr(0, nl);
        if (valid_repo_name(line)) {
            out.emplace_back(line);
        }
        bytes = nl == std::string_view::npos ? std::string_view() : bytes.substr(nl + 1);
    }
}

Result<void> fsync_fd(int fd, const char* what) {
    if (::fsync(fd) != 0) {
        return Error::sys(errno, what);
    }
    return util::Ok{};
}

} // namespace

Result<std::vector<std::string>> WriteJournal::read_names(int rootfd) {
    std::vector<std::string> out;
    for (const std::string* f : {&main_name(), &new_name()}) {
        auto b = blocking::read_file(rootfd, *f, journal_bytes_max);
        if (b) {
            split_names(*b, out);
        } else if (b.error().sys_errno != ENOENT) {
            return std::move(b).error();
        }
    }
    return out;
}

Result<std::unique_ptr<WriteJournal>> WriteJournal::open(int rootfd) {
    util::UniqueFd fd(::openat(rootfd, main_name().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid()) {
        return Error::sys(errno, "open " + main_name());
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return Error::sys(errno, "stat " + main_name());
    }
    auto pending = blocking::read_file(rootfd, new_name(), journal_bytes_max);
    if (pending) { // a save that did not finish: keep its records in the main file
        auto w = blocking::write_all(fd.get(), *pending, static_cast<std::uint64_t>(st.st_size));
        if (!w) {
            return Error::sys(w.error().sys_errno, "write the journal");
        }
        if (auto s = fsync_fd(fd.get(), "fsync the journal"); !s) {
            return s.error();
        }
        if (::unlinkat(rootfd, new_name().c_str(), 0) != 0) {
            return Error::sys(errno, "remove " + new_name());
        }
        st.st_size += static_cast<off_t>(pending->size());
    } else if (pending.error().sys_errno != ENOENT) {
        return std::move(pending).error();
    }
    if (auto s = fsync_fd(rootfd, "fsync the root"); !s) {
        return s.error();
    }
    auto names = read_names(rootfd);
    if (!names) {
        return std::move(names).error();
    }
    std::unique_ptr<WriteJournal> j(new WriteJournal(rootfd));
    j->cur_ = std::make_shared<File>();
    j->cur_->fd = std::move(fd);
    j->cur_->size = static_cast<std::uint64_t>(st.st_size);
    j->cur_->names.insert(names->begin(), names->end());
    return j;
}

Result<void> WriteJournal::remove(int rootfd) {
    for (const std::string* f : {&main_name(), &new_name()}) {
        if (::unlinkat(rootfd, f->c_str(), 0) != 0 && errno != ENOENT) {
            return Error::sys(errno, "remove " + *f);
        }
    }
    return fsync_fd(rootfd, "fsync the root");
}

Task<Result<void>> WriteJournal::record(std::string repo) noexcept {
    {
        std::lock_guard lk(mu_);
        if (!snapshot_valid_ || cur_->names.contains(repo)) {
            co_return util::Ok{}; // the common case: recorded since the last save
        }
    }
    std::vector<std::string> one;
    one.push_back(std::move(repo));
    co_return co_await record_all(std::move(one));
}

Task<Result<void>> WriteJournal::record_all(std::vector<std::string> repos) noexcept {
    std::string lines;
    std::vector<std::string> added;
    std::shared_ptr<File> f;
    std::uint64_t off = 0;
    {
        std::lock_guard lk(mu_);
        if (!snapshot_valid_) {
            co_return util::Ok{};
        }
        f = cur_;
        for (std::string& r : repos) {
            if (f->names.insert(r).second) {
                lines += r;
                lines += '\n';
                added.push_back(std::move(r));
            }
        }
        if (lines.empty()) {
            co_return util::Ok{};
        }
        off = f->size;
        f->size += lines.size();
    }
    auto len = static_cast<unsigned>(lines.size());
    int n = co_await reactor::write(f->fd.get(), lines.data(), len, off);
    int s = n == static_cast<int>(len) ? co_await reactor::fsync(f->fd.get(), true) : -EIO;
    if (s >= 0) {
        co_return util::Ok{};
    }
    {
        std::lock_guard lk(mu_);
        for (const std::string& r : added) {
            f->names.erase(r);
        }
    }
    Result<void> r = util::Ok{};
    co_await reactor::Shard::current()->blocking().run([this, &r] { r = invalidate_snapshot(); });
    co_return r;
}

std::vector<std::string> WriteJournal::recorded_names() const {
    std::lock_guard lk(mu_);
    return {cur_->names.begin(), cur_->names.end()};
}

std::size_t WriteJournal::recorded() const noexcept {
    std::lock_guard lk(mu_);
    return cur_->names.size();
}

Result<void> WriteJournal::begin_save() {
    util::UniqueFd fd(
        ::openat(rootfd_, new_name().c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) {
        return Error::sys(errno, "create " + new_name());
    }
    // The file must exist after a crash before anything is recorded in it.
    if (auto s = fsync_fd(fd.get(), "fsync the journal"); !s) {
        return s;
    }
    if (auto s = fsync_fd(rootfd_, "fsync the root"); !s) {
        return s;
    }
    auto f = std::make_shared<File>();
    f->fd = std::move(fd);
    std::lock_guard lk(mu_);
    cur_ = std::move(f);
    snapshot_valid_ = true;
    return util::Ok{};
}

Result<void> WriteJournal::add_blocking(const std::vector<std::string>& repos) {
    std::shared_ptr<File> f;
    std::string bytes;
    std::uint64_t off = 0;
    {
        std::lock_guard lk(mu_);
        f = cur_;
        for (const std::string& r : repos) {
            if (f->names.insert(r).second) {
                bytes += r;
                bytes.push_back('\n');
            }
        }
        off = f->size;
        f->size += bytes.size();
    }
    if (bytes.empty()) {
        return util::Ok{};
    }
    if (auto w = blocking::write_all(f->fd.get(), bytes, off); !w) {
        return Error::sys(w.error().sys_errno, "write the journal");
    }
    return fsync_fd(f->fd.get(), "fsync the journal");
}

Result<void> WriteJournal::commit_save() {
    if (::renameat(rootfd_, new_name().c_str(), rootfd_, main_name().c_str()) != 0) {
        return Error::sys(errno, "rename " + new_name());
    }
    return fsync_fd(rootfd_, "fsync the root");
}

void WriteJournal::abort_save() noexcept { (void)invalidate_snapshot(); }

Result<void> WriteJournal::invalidate_snapshot() noexcept {
    const std::string snap(snapshot_file);
    if (::unlinkat(rootfd_, snap.c_str(), 0) != 0 && errno != ENOENT) {
        return Error::sys(errno, "remove " + snap);
    }
    if (auto s = fsync_fd(rootfd_, "fsync the root"); !s) {
        return s;
    }
    std::lock_guard lk(mu_);
    snapshot_valid_ = false;
    return util::Ok{};
}

} // namespace rp::storage
