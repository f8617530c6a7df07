// SPDX-License-Identifier: Apache-2.0
#include "storage/fs.hh"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include "reactor/ops.hh"
#include "reactor/sync.hh"
#include "storage/layout.hh"
#include "util/assert.hh"
#include "util/unique_fd.hh"

namespace rp::storage {

using reactor::Task;
using util::Errc;
using util::Error;
using util::Result;

Task<Result<int>> Fs::open(std::string path, int flags, unsigned mode) noexcept {
    int fd = co_await reactor::openat(dirfd_, path.c_str(), flags, static_cast<mode_t>(mode));
    if (fd < 0) {
        co_return Error::sys(fd, "open");
    }
    co_return fd;
}

Task<void> Fs::close(int fd) noexcept { (void)co_await reactor::close(fd); }

Task<Result<struct statx>> Fs::stat(std::string path) noexcept {
    struct statx st {};
    int r = co_await reactor::statx(dirfd_, path.c_str(), AT_SYMLINK_NOFOLLOW,
                                    STATX_TYPE | STATX_SIZE | STATX_MTIME, &st);
    if (r < 0) {
        co_return Error::sys(r, "stat");
    }
    co_return st;
}

Task<Result<struct statx>> Fs::fstat(int fd) noexcept {
    struct statx st {};
    int r = co_await reactor::statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &st);
    if (r < 0) {
        co_return Error::sys(r, "fstat");
    }
    co_return st;
}

Task<Result<void>> Fs::read_exact(int fd, char* buf, std::size_t len, std::uint64_t off) noexcept {
    std::size_t got = 0;
    while (got < len) {
        std::size_t want = len - got;
        unsigned chunk = want > (1u << 30) ? (1u << 30) : static_cast<unsigned>(want);
        int n = co_await reactor::read(fd, buf + got, chunk, off + got);
        if (n < 0) {
            co_return Error::sys(n, "read");
        }
        if (n == 0) {
            co_return Error::of(Errc::size_mismatch, "file shorter than expected");
        }
        got += static_cast<std::size_t>(n);
    }
    co_return util::Ok{};
}

Task<Result<std::string>> Fs::read_file(std::string path, std::size_t max_bytes) noexcept {
    auto fd = co_await open(std::move(path), O_RDONLY);
    if (!fd) {
        co_return std::move(fd).error();
    }
    auto st = co_await fstat(*fd);
    if (!st) {
        co_await close(*fd);
        co_return std::move(st).error();
    }
    if (st->stx_size > max_bytes) {
        co_await close(*fd);
        co_return Error::of(Errc::too_large, "file larger than expected");
    }
    std::string out(static_cast<std::size_t>(st->stx_size), '\0');
    auto r = co_await read_exact(*fd, out.data(), out.size(), 0);
    co_await close(*fd);
    if (!r) {
        co_return std::move(r).error();
    }
    co_return out;
}

Task<Result<void>> Fs::write_all(int fd, const char* data, std::size_t len,
                                 std::uint64_t off) noexcept {
    std::size_t done = 0;
    while (done < len) {
        std::size_t want = len - done;
        unsigned chunk = want > (1u << 30) ? (1u << 30) : static_cast<unsigned>(want);
        int n = co_await reactor::write(fd, data + done, chunk, off + done);
        if (n < 0) {
            co_return Error::sys(n, "write");
        }
        if (n == 0) {
            co_return Error::sys(EIO, "write made no progress");
        }
        done += static_cast<std::size_t>(n);
    }
    co_return util::Ok{};
}

Task<Result<void>> Fs::fsync(int fd) noexcept {
    int r = co_await reactor::fsync(fd);
    if (r < 0) {
        co_return Error::sys(r, "fsync");
    }
    co_return util::Ok{};
}

Task<Result<void>> Fs::fsync_dir(std::string dir) noexcept {
    auto fd =
        co_await open(dir.empty() ? std::string(".") : std::move(dir), O_RDONLY | O_DIRECTORY);
    if (!fd) {
        co_return std::move(fd).error();
    }
    auto r = co_await fsync(*fd);
    co_await close(*fd);
    co_return r;
}

Task<Result<void>> Fs::mkdirs(std::string dir, bool durable) noexcept {
    // Walk down from the deepest existing ancestor. Bounded by path depth.
    std::vector<std::string> missing;
    std::string cur = dir;
    for (int depth = 0; depth < 512 && !cur.empty(); ++depth) {
        int r = co_await reactor::mkdirat(dirfd_, cur.c_str(), 0755);
        if (r == 0) {
            if (durable) {
                auto s = co_await fsync_dir(std::string(layout::parent(cur)));
                if (!s) {
                    co_return s;
                }
            }
            break;
        }
        if (r == -EEXIST) {
            break;
        }
        if (r != -ENOENT) {
            co_return Error::sys(r, "mkdir");
        }
        missing.push_back(cur);
        cur = std::string(layout::parent(cur));
    }
    // Create what was missing, parent first; each new directory's parent is fsynced.
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        int r = co_await reactor::mkdirat(dirfd_, it->c_str(), 0755);
        if (r < 0 && r != -EEXIST) {
            co_return Error::sys(r, "mkdir");
        }
        if (r == 0 && durable) {
            auto s = co_await fsync_dir(std::string(layout::parent(*it)));
            if (!s) {
                co_return s;
            }
        }
    }
    co_return util::Ok{};
}

Task<Result<void>> Fs::write_atomic(std::string path, std::string bytes) noexcept {
    std::string dir(layout::parent(path));
    auto m = co_await mkdirs(dir);
    if (!m) {
        co_return m;
    }
    std::string tmp = path + "." + random_suffix() + ".tmp";
    auto fd = co_await open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (!fd) {
        co_return std::move(fd).error();
    }
    auto w = co_await write_all(*fd, bytes.data(), bytes.size(), 0);
    if (w) {
        w = co_await fsync(*fd);
    }
    co_await close(*fd);
    if (!w) {
        (void)co_await unlink(tmp);
        co_return w;
    }
    int r = co_await reactor::renameat(dirfd_, tmp.c_str(), dirfd_, path.c_str());
    if (r < 0) {
        (void)co_await unlink(tmp);
        co_return Error::sys(r, "rename");
    }
    co_return co_await fsync_dir(dir);
}

Task<Result<void>> Fs::write_file(std::string path, std::string bytes) noexcept {
    auto fd = co_await open(std::move(path), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!fd) {
        co_return std::move(fd).error();
    }
    auto w = co_await write_all(*fd, bytes.data(), bytes.size(), 0);
    co_await close(*fd);
    co_return w;
}

Task<Result<void>> Fs::rename_durable(std::string from, std::string to) noexcept {
    int r = co_await reactor::renameat(dirfd_, from.c_str(), dirfd_, to.c_str());
    if (r < 0) {
        co_return Error::sys(r, "rename");
    }
    co_return co_await fsync_dir(std::string(layout::parent(to)));
}

Task<Result<void>> Fs::unlink(std::string path) noexcept {
    int r = co_await reactor::unlinkat(dirfd_, path.c_str(), 0);
    if (r < 0) {
        co_return Error::sys(r, "unlink");
    }
    co_return util::Ok{};
}

Task<Result<void>> Fs::rmdir(std::string path) noexcept {
    int r = co_await reactor::unlinkat(dirfd_, path.c_str(), AT_REMOVEDIR);
    if (r < 0) {
        co_return Error::sys(r, "rmdir");
    }
    co_return util::Ok{};
}

Task<Result<void>> Fs::remove_tree(std::string path) noexcept {
    Result<void> result;
    int dirfd = dirfd_;
    co_await reactor::Shard::current()->blocking().run(
        [&result, dirfd, &path] { result = blocking::remove_tree(dirfd, path); });
    co_return result;
}

namespace blocking {

static Result<void> remove_children(int fd, int depth) {
    if (depth > 64) {
        return Error::of(Errc::invalid, "directory tree too deep");
    }
    int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
        return Error::sys(errno, "dup");
    }
    DIR* d = ::fdopendir(dup);
    if (d == nullptr) {
        ::close(dup);
        return Error::sys(errno, "fdopendir");
    }
    std::vector<std::pair<std::string, bool>> entries;
    while (dirent* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n == "." || n == "..") {
            continue;
        }
        entries.emplace_back(std::string(n), e->d_type == DT_DIR);
    }
    ::closedir(d);
    for (auto& [name, is_dir] : entries) {
        if (::unlinkat(fd, name.c_str(), 0) == 0) {
            continue;
        }
        if (errno != EISDIR && errno != EPERM) {
            if (errno == ENOENT) {
                continue;
            }
            return Error::sys(errno, "unlink " + name);
        }
        util::UniqueFd sub(
            ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub.valid()) {
            return Error::sys(errno, "open " + name);
        }
        auto r = remove_children(sub.get(), depth + 1);
        if (!r) {
            return r;
        }
        if (::unlinkat(fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
            return Error::sys(errno, "rmdir " + name);
        }
    }
    return util::Ok{};
}

Result<void> remove_tree(int dirfd, const std::string& path) {
    util::UniqueFd fd(
        ::openat(dirfd, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) {
        if (errno == ENOENT) {
            return util::Ok{};
        }
        return Error::sys(errno, "open " + path);
    }
    auto r = remove_children(fd.get(), 0);
    if (!r) {
        return r;
    }
    if (::unlinkat(dirfd, path.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        return Error::sys(errno, "rmdir " + path);
    }
    return util::Ok{};
}

Result<std::string> read_file(int dirfd, const std::string& path, std::size_t max_bytes) {
    util::UniqueFd fd(::openat(dirfd, path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        return Error::sys(errno, "open " + path);
    }
    std::string out;
    char buf[65536];
    for (int i = 0; i < 1 << 20; ++i) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return Error::sys(errno, "read " + path);
        }
        if (n == 0) {
            return out;
        }
        if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
            return Error::of(Errc::too_large, path);
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    return Error::of(Errc::too_large, path);
}

Result<void> write_all(int fd, std::string_view bytes, std::uint64_t off) {
    while (!bytes.empty()) {
        ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return Error::sys(n < 0 ? errno : EIO, "write");
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
        off += static_cast<std::uint64_t>(n);
    }
    return util::Ok{};
}

} // namespace blocking

namespace {

std::mt19937_64& rng() {
    thread_local std::mt19937_64 g = [] {
        std::uint64_t seed[4] = {};
        ssize_t n = ::getrandom(seed, sizeof seed, 0);
        RP_ASSERT(n == static_cast<ssize_t>(sizeof seed));
        std::seed_seq s{seed[0], seed[1], seed[2], seed[3]};
        return std::mt19937_64(s);
    }();
    return g;
}

} // namespace

std::string new_uuid() {
    std::uint64_t a = rng()();
    std::uint64_t b = rng()();
    a = (a & ~0xF000ull) | 0x4000ull;                 // version 4
    b = (b & ~(0xC000ull << 48)) | (0x8000ull << 48); // RFC 4122 variant
    char out[37];
    static constexpr char hex[] = "0123456789abcdef";
    unsigned char bytes[16];
    for (int i = 0; i < 8; ++i) {
        bytes[i] = static_cast<unsigned char>(a >> (56 - 8 * i));
        bytes[8 + i] = static_cast<unsigned char>(b >> (56 - 8 * i));
    }
    int o = 0;
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[bytes[i] >> 4];
        out[o++] = hex[bytes[i] & 15];
    }
    out[o] = '\0';
    return std::string(out, 36);
}

std::string random_suffix() {
    std::uint64_t v = rng()();
    char buf[17];
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; ++i) {
        buf[i] = hex[(v >> (4 * i)) & 15];
    }
    return std::string(buf, 16);
}

Task<Result<void>> Fs::touch(std::string path) noexcept {
    int r = 0;
    co_await reactor::Shard::current()->blocking().run([this, &path, &r] {
        r = ::utimensat(dirfd_, path.c_str(), nullptr, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
    });
    if (r < 0) {
        co_return Error::sys(r, "touch " + path);
    }
    co_return util::Ok{};
}

} // namespace rp::storage
