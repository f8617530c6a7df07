// SPDX-License-Identifier: Apache-2.0
#include "storage/check.hh"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "storage/digest.hh"
#include "storage/fs.hh"
#include "storage/layout.hh"
#include "storage/names.hh"
#include "storage/tree_scan.hh"
#include "util/strings.hh"
#include "util/unique_fd.hh"

namespace rp::storage {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t chunk = 1 << 20;
constexpr std::size_t manifest_read_max = 64u << 20;

// A finding, with how to look at it again and how to repair it.
struct Pending {
    std::string_view kind;
    std::string what;
    std::function<bool()> still; // whether it is still so (a second look)
    std::function<bool()> fix;   // repairs it; true when it did (null: not repairable)
};

struct Ctx {
    int v2fd;
    const CheckOptions& opt;
    CheckProgress& p;
    const CheckOutput& out;
    Clock::time_point t0 = Clock::now();
    std::mutex mu;                       // out, pending, gone
    std::vector<Pending> pending;        // online: findings for the second look
    std::unordered_set<std::string> bad; // corrupt blobs: missing to what links them

    bool stopping() const { return opt.stop != nullptr && opt.stop->load(); }

    void found(Pending f) {
        std::lock_guard lk(mu);
        if (opt.online) {
            pending.push_back(std::move(f));
            return;
        }
        emit(f);
    }

    void emit(Pending& f) { // under mu
        bool repaired = opt.repair && f.fix && f.fix();
        p.problems.fetch_add(1, std::memory_order_relaxed);
        if (repaired) {
            p.repaired.fetch_add(1, std::memory_order_relaxed);
        }
        if (out) {
            out(Finding{f.kind, f.what, repaired});
        }
    }

    bool exists(const std::string& path) const {
        struct stat st {};
        return ::fstatat(v2fd, path.c_str(), &st, 0) == 0;
    }

    // Whether the blob's data is there and was not found corrupt.
    bool stored(const Digest& d) {
        {
            std::lock_guard lk(mu);
            if (bad.contains(d.str())) {
                return false;
            }
        }
        return exists(layout::blob_data(d));
    }

    bool remove(const std::string& path) const {
        auto r = blocking::remove_tree(v2fd, path);
        return r || r.error().kind == util::Errc::not_found;
    }

    // Holds the readers to bytes_per_s: sleeps until the bytes read so far
    // are due (a second at a time, so that a stop is seen).
    void pace(std::uint64_t n) {
        std::uint64_t total = p.bytes.fetch_add(n, std::memory_order_relaxed) + n;
        if (opt.bytes_per_s == 0) {
            return;
        }
        const auto due =
            t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                     static_cast<double>(total) / static_cast<double>(opt.bytes_per_s)));
        for (int i = 0; i < 100000 && Clock::now() < due && !stopping(); ++i) {
            std::this_thread::sleep_for(
                std::min<Clock::duration>(due - Clock::now(), std::chrono::seconds(1)));
        }
    }
};

// The digest of the blob's bytes; nullopt when it cannot be read (gone).
std::optional<Digest> hash_blob(Ctx& c, const Digest& d) {
    util::UniqueFd fd(::openat(c.v2fd, layout::blob_data(d).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        return std::nullopt;
    }
    (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    thread_local std::vector<char> buf(chunk);
    Hasher h(d.algorithm());
    // Bounded: each turn reads up to a chunk; a blob is at most blob_bytes_max.
    for (std::uint64_t turn = 0; turn < (1ULL << 40); ++turn) {
        ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return std::nullopt;
        }
        if (n == 0) {
            break;
        }
        h.update(buf.data(), static_cast<std::size_t>(n));
        c.pace(static_cast<std::uint64_t>(n));
        if (c.stopping()) {
            return std::nullopt;
        }
    }
    return h.peek();
}

// Moves a corrupt blob's data to <quarantine>/<alg>/<hex>[.<n>] and removes
// its directory.
bool quarantine(Ctx& c, const Digest& d) {
    const int q = c.opt.quarantine_dirfd;
    if (q < 0) {
        return false;
    }
    std::string alg(d.algorithm_name());
    if (::mkdirat(q, alg.c_str(), 0755) != 0 && errno != EEXIST) {
        return false;
    }
    std::string to = alg + "/" + std::string(d.hex());
    struct stat st {};
    for (int n = 1; n < 1000 && ::fstatat(q, to.c_str(), &st, 0) == 0; ++n) {
        to = alg + "/" + std::string(d.hex()) + "." + std::to_string(n);
    }
    if (::renameat(c.v2fd, layout::blob_data(d).c_str(), q, to.c_str()) != 0) {
        return false;
    }
    (void)::fsync(q);
    return c.remove(layout::blob_dir(d));
}

void check_blobs(Ctx& c) {
    std::vector<std::string> empty;
    std::vector<Digest> blobs = tree::list_blobs(c.v2fd, &empty);
    c.p.blobs_total.store(blobs.size());
    for (std::string& dir : empty) {
        const int fd = c.v2fd;
        Pending f{"blob directory without data", dir, nullptr, nullptr};
        f.still = [fd, dir] {
            struct stat st {};
            return ::fstatat(fd, dir.c_str(), &st, 0) == 0 &&
                   ::fstatat(fd, (dir + "/data").c_str(), &st, 0) != 0;
        };
        f.fix = [&c, dir] { return c.remove(dir); };
        c.found(std::move(f));
    }
    tree::parallel_for(blobs.size(), c.opt.threads, [&](std::size_t i) {
        const Digest& d = blobs[i];
        if (c.stopping()) {
            return;
        }
        auto got = hash_blob(c, d);
        if (!got) {
            if (c.exists(layout::blob_data(d)) && !c.stopping()) {
                c.p.errors.fetch_add(1, std::memory_order_relaxed);
            }
            return; // removed while checked (a garbage collection)
        }
        c.p.blobs.fetch_add(1, std::memory_order_relaxed);
        if (*got == d) {
            return;
        }
        {
            std::lock_guard lk(c.mu);
            c.bad.insert(d.str());
        }
        Pending f{"corrupt blob", d.str() + " (its bytes hash to " + got->str() + ")", nullptr,
                  nullptr};
        f.still = [] { return true; }; // bytes do not change in place
        f.fix = [&c, d] { return quarantine(c, d); };
        c.found(std::move(f));
    });
}

// The digest a link file names, if it names the one its path does (or any,
// for a tag's current/link: `expect` null).
std::optional<Digest> read_link(int v2fd, const std::string& path, const Digest* expect) {
    auto bytes = blocking::read_file(v2fd, path, 256);
    if (!bytes) {
        return std::nullopt;
    }
    auto d = Digest::parse(util::trim(*bytes));
    if (!d || (expect != nullptr && !(*d == *expect))) {
        return std::nullopt;
    }
    return std::move(*d);
}

// <dir>/<alg>/<hex> entries: the digest the path names (nullopt: a malformed name).
std::vector<std::pair<std::string, std::optional<Digest>>> digest_dirs(int v2fd,
                                                                       const std::string& dir) {
    std::vector<std::pair<std::string, std::optional<Digest>>> out;
    for (const tree::Entry& alg : tree::list_dir(v2fd, dir)) {
        for (const tree::Entry& hex : tree::list_dir(v2fd, dir + "/" + alg.name)) {
            auto d = Digest::parse(alg.name + ":" + hex.name);
            std::optional<Digest> named;
            if (d) {
                named = std::move(*d);
            }
            out.emplace_back(dir + "/" + alg.name + "/" + hex.name, std::move(named));
        }
    }
    return out;
}

void check_links(Ctx& c, const std::string& repo, const std::string& dir, std::string_view what,
                 std::vector<Digest>* good) {
    const int fd = c.v2fd;
    for (auto& [path, named] : digest_dirs(fd, dir)) {
        std::optional<Digest> d =
            named ? read_link(fd, path + "/link", &*named) : std::optional<Digest>();
        if (!d) {
            Pending f{what == "layer" ? "bad layer link" : "bad revision link", path, nullptr,
                      nullptr};
            f.still = [fd, path = path, named = named] {
                struct stat st {};
                return ::fstatat(fd, path.c_str(), &st, 0) == 0 &&
                       !(named && read_link(fd, path + "/link", &*named));
            };
            f.fix = [&c, path = path] { return c.remove(path); };
            c.found(std::move(f));
            continue;
        }
        if (!c.stored(*d)) {
            Pending f{what == "layer" ? "dangling layer link" : "dangling revision link",
                      repo + " -> " + d->str(), nullptr, nullptr};
            f.still = [&c, path = path, d = *d] {
                return c.exists(path + "/link") && !c.stored(d);
            };
            f.fix = [&c, path = path] { return c.remove(path); };
            c.found(std::move(f));
            continue;
        }
        if (good != nullptr) {
            good->push_back(std::move(*d));
        }
    }
}

void check_manifest(Ctx& c, const std::string& repo, const Digest& d) {
    auto body = blocking::read_file(c.v2fd, layout::blob_data(d), manifest_read_max);
    if (!body) {
        return; // gone since it was listed
    }
    if (c.opt.references == nullptr) {
        return;
    }
    auto named = (*c.opt.references)(d, *body);
    const std::string rev = layout::revision_link(repo, d);
    if (!named) {
        Pending f{"unparseable manifest", repo + "@" + d.str() + ": " + named.error().detail,
                  nullptr, nullptr};
        f.still = [&c, rev] { return c.exists(rev); };
        c.found(std::move(f));
        return;
    }
    for (const Digest& b : *named) {
        if (c.stored(b)) {
            continue;
        }
        Pending f{"missing blob", repo + "@" + d.str() + " names " + b.str() + ", not stored",
                  nullptr, nullptr};
        f.still = [&c, rev, b] { return c.exists(rev) && !c.stored(b); };
        c.found(std::move(f));
    }
}

void check_tags(Ctx& c, const std::string& repo) {
    const int fd = c.v2fd;
    for (const tree::Entry& t : tree::list_dir(fd, layout::tags_dir(repo))) {
        if (!valid_tag(t.name)) {
            continue; // not a tag Distribution would serve either
        }
        const std::string dir = layout::tag_dir(repo, t.name);
        const std::string link = layout::tag_current_link(repo, t.name);
        auto d = read_link(fd, link, nullptr);
        if (!d && !c.exists(link)) {
            continue; // a tag directory with only history: not served, not a link
        }
        if (d && c.exists(layout::revision_link(repo, *d)) && c.stored(*d)) {
            continue;
        }
        Pending f{d ? "dangling tag" : "bad tag link",
                  repo + ":" + t.name + (d ? " -> " + d->str() : std::string()), nullptr, nullptr};
        f.still = [&c, fd, repo, link, d] {
            auto now = read_link(fd, link, nullptr);
            if (!d) {
                return c.exists(link) && !now;
            }
            return now && *now == *d &&
                   !(c.exists(layout::revision_link(repo, *d)) && c.stored(*d));
        };
        f.fix = [&c, dir] { return c.remove(dir); };
        c.found(std::move(f));
    }
}

void check_uploads(Ctx& c, const std::string& repo, std::int64_t now) {
    const int fd = c.v2fd;
    for (const tree::Entry& u : tree::list_dir(fd, layout::uploads_dir(repo))) {
        const std::string dir = layout::uploads_dir(repo) + "/" + u.name;
        if (!u.is_dir || !tree::upload_is_stale(fd, dir, now, c.opt.upload_purge_age_s)) {
            continue; // may still be resumed
        }
        Pending f{"stale upload", repo + " " + u.name, nullptr, nullptr};
        f.still = [fd, dir, now, age = c.opt.upload_purge_age_s] {
            return tree::upload_is_stale(fd, dir, now, age);
        };
        f.fix = [&c, dir] { return c.remove(dir); };
        c.found(std::move(f));
    }
}

void check_repo(Ctx& c, const std::string& repo) {
    std::vector<Digest> revisions;
    check_links(c, repo, layout::layers_dir(repo), "layer", nullptr);
    check_links(c, repo, layout::revisions_dir(repo), "revision", &revisions);
    for (const Digest& d : revisions) {
        check_manifest(c, repo, d);
    }
    check_tags(c, repo);
}

} // namespace

void check_tree(int v2fd, const CheckOptions& opt, CheckProgress& progress,
                const CheckOutput& out) {
    Ctx c{v2fd, opt, progress, out};
    const unsigned threads = std::max(1u, opt.threads);
    check_blobs(c);
    tree::Found found = tree::find_all(v2fd, threads, nullptr, opt.stop);
    progress.repositories.store(found.repos.size());
    tree::parallel_for(found.repos.size(), threads, [&](std::size_t i) {
        if (!c.stopping()) {
            check_repo(c, found.repos[i]);
        }
    });
    // Stale uploads are the server's own purge's while it serves.
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    for (const std::string& name : opt.online ? std::vector<std::string>{} : found.with_uploads) {
        if (!c.stopping()) {
            check_uploads(c, name, now);
        }
    }
    if (opt.online && !c.pending.empty()) {
        // A second look a moment later: what a delete, a push or a garbage
        // collection had half done is done by then.
        for (int i = 0; i < 20 && !c.stopping(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        std::vector<Pending> pending;
        {
            std::lock_guard lk(c.mu);
            pending.swap(c.pending);
        }
        for (Pending& f : pending) {
            if (f.still && f.still()) {
                f.fix = nullptr; // online, nothing is repaired
                std::lock_guard lk(c.mu);
                c.emit(f);
            }
        }
    }
    progress.done.store(true);
}

} // namespace rp::storage
