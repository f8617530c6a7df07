// SPDX-License-Identifier: Apache-2.0
#include "storage/rebuild.hh"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "storage/fs.hh"
#include "storage/layout.hh"
#include "storage/names.hh"
#include "storage/store.hh"
#include "util/strings.hh"
#include "util/unique_fd.hh"

namespace rp::storage {

using util::Result;

namespace {

constexpr int walk_depth_max = 64;
constexpr std::size_t link_bytes_max = 512;

struct Entry {
    std::string name;
    bool is_dir;
};

// Lists a directory relative to dirfd; empty when it does not exist.
std::vector<Entry> list_dir(int dirfd, const std::string& path) {
    std::vector<Entry> out;
    int fd = ::openat(dirfd, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return out;
    }
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
        ::close(fd);
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n == "." || n == "..") {
            continue;
        }
        bool dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st {};
            dir = ::fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        out.push_back(Entry{std::string(n), dir});
    }
    ::closedir(d);
    return out;
}

// What the walk of repositories/ found: repositories (a _layers or
// _manifests child) and, separately, every directory with an _uploads child
// (a push abandoned before its first blob leaves only that).
struct Found {
    std::vector<std::string> repos;
    std::vector<std::string> with_uploads;
    std::size_t skipped = 0;
};

void find_repos(int v2fd, const std::string& rel, const std::string& name, int depth, Found& out) {
    if (depth > walk_depth_max) {
        return;
    }
    bool is_repo = false;
    bool has_uploads = false;
    for (const Entry& e : list_dir(v2fd, rel)) {
        if (!e.is_dir) {
            continue;
        }
        if (!e.name.empty() && e.name.front() == '_') {
            is_repo = is_repo || e.name == "_layers" || e.name == "_manifests";
            has_uploads = has_uploads || e.name == "_uploads";
            continue;
        }
        std::string child = name.empty() ? e.name : name + "/" + e.name;
        find_repos(v2fd, rel + "/" + e.name, child, depth + 1, out);
    }
    if (!is_repo && !has_uploads) {
        return;
    }
    if (!valid_repo_name(name)) {
        ++out.skipped;
        return;
    }
    if (is_repo) {
        out.repos.push_back(name);
    }
    if (has_uploads) {
        out.with_uploads.push_back(name);
    }
}

std::optional<Digest> read_link(int v2fd, const std::string& path) {
    auto s = blocking::read_file(v2fd, path, link_bytes_max);
    if (!s) {
        return std::nullopt;
    }
    auto d = Digest::parse(util::trim(*s));
    if (!d) {
        return std::nullopt;
    }
    return *d;
}

// Links under <dir>/<alg>/<hex>/link whose content names the same digest.
std::vector<Digest> read_digest_links(int v2fd, const std::string& dir, std::size_t& skipped) {
    std::vector<Digest> out;
    for (const Entry& alg : list_dir(v2fd, dir)) {
        for (const Entry& hex : list_dir(v2fd, dir + "/" + alg.name)) {
            auto d = read_link(v2fd, dir + "/" + alg.name + "/" + hex.name + "/link");
            if (!d || d->algorithm_name() != alg.name || d->hex() != hex.name) {
                ++skipped;
                continue;
            }
            out.push_back(*d);
        }
    }
    return out;
}

struct RepoScan {
    std::string name;
    std::vector<Digest> layers;
    std::vector<Digest> revisions;
    std::vector<std::pair<std::string, Digest>> tags;
    std::size_t skipped = 0;
};

bool upload_is_stale(int v2fd, const std::string& dir, std::int64_t now, std::int64_t age_s) {
    auto s = blocking::read_file(v2fd, dir + "/startedat", 128);
    std::optional<std::int64_t> t = s ? util::parse_rfc3339(util::trim(*s)) : std::nullopt;
    if (!t) {
        struct stat st {};
        if (::fstatat(v2fd, dir.c_str(), &st, 0) != 0) {
            return false;
        }
        t = static_cast<std::int64_t>(st.st_mtime);
    }
    return now - *t > age_s;
}

void scan_repo(int v2fd, RepoScan& r) {
    r.layers = read_digest_links(v2fd, layout::layers_dir(r.name), r.skipped);
    r.revisions = read_digest_links(v2fd, layout::revisions_dir(r.name), r.skipped);
    for (const Entry& t : list_dir(v2fd, layout::tags_dir(r.name))) {
        if (!t.is_dir || !valid_tag(t.name)) {
            ++r.skipped;
            continue;
        }
        auto d = read_link(v2fd, layout::tag_current_link(r.name, t.name));
        if (!d) {
            ++r.skipped;
            continue;
        }
        r.tags.emplace_back(t.name, *d);
    }
}

// Removes a repository's stale upload directories (unless a session holds
// one); counts what it kept and what it removed.
void scan_uploads(int v2fd, const std::string& name, std::int64_t purge_age_s, const Store* store,
                  std::size_t& kept, std::size_t& purged) {
    std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    for (const Entry& u : list_dir(v2fd, layout::uploads_dir(name))) {
        std::string dir = layout::uploads_dir(name) + "/" + u.name;
        bool held = store != nullptr && store->upload_active(u.name);
        if (u.is_dir && !held && upload_is_stale(v2fd, dir, now, purge_age_s)) {
            if (blocking::remove_tree(v2fd, dir)) {
                ++purged;
            }
            continue;
        }
        ++kept;
    }
}

template <typename F> void parallel_for(std::size_t n, unsigned threads, F&& fn) {
    std::atomic<std::size_t> next{0};
    auto worker = [&] {
        (void)pthread_setname_np(pthread_self(), "rp-rebuild");
        for (std::size_t i = next++; i < n; i = next++) {
            fn(i);
        }
    };
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) {
        pool.emplace_back(worker);
    }
    worker();
    for (auto& t : pool) {
        t.join();
    }
}

// Reads, verifies and parses every distinct manifest the repositories link.
std::unordered_map<Digest, ManifestPtr, DigestHash>
parse_manifests(int v2fd, const std::vector<RepoScan>& scans, Store& store,
                const ManifestParser& parse, unsigned threads, std::size_t& skipped) {
    std::unordered_map<Digest, ManifestPtr, DigestHash> manifests;
    for (const RepoScan& r : scans) {
        for (const Digest& d : r.revisions) {
            manifests.emplace(d, nullptr);
        }
    }
    std::vector<Digest> todo;
    todo.reserve(manifests.size());
    for (const auto& [d, m] : manifests) {
        todo.push_back(d);
    }
    std::vector<ManifestPtr> parsed(todo.size());
    std::atomic<std::size_t> bad{0};
    parallel_for(todo.size(), threads, [&](std::size_t i) {
        auto body = blocking::read_file(v2fd, layout::blob_data(todo[i]),
                                        store.config().manifest_bytes_max * 4);
        if (!body || !(digest_of(todo[i].algorithm(), *body) == todo[i])) {
            ++bad; // missing or corrupt bytes: the revision is not served
            return;
        }
        auto info = parse(todo[i], std::move(*body));
        if (!info) {
            ++bad;
            return;
        }
        auto m = std::make_shared<ManifestInfo>(std::move(*info));
        if (m->body && !store.reserve_cache(m->body->size())) {
            m->body.reset();
        }
        parsed[i] = std::move(m);
    });
    for (std::size_t i = 0; i < todo.size(); ++i) {
        manifests[todo[i]] = parsed[i];
    }
    skipped += bad.load();
    return manifests;
}

} // namespace

Result<RebuildStats> rebuild(int v2fd, Index& index, Store& store, const ManifestParser& parse,
                             std::int64_t purge_age_s, unsigned threads) {
    auto t0 = std::chrono::steady_clock::now();
    RebuildStats stats;
    Found found;
    find_repos(v2fd, "repositories", "", 0, found);
    stats.skipped += found.skipped;
    std::vector<RepoScan> scans(found.repos.size());
    for (std::size_t i = 0; i < found.repos.size(); ++i) {
        scans[i].name = found.repos[i];
    }
    parallel_for(scans.size(), threads, [&](std::size_t i) { scan_repo(v2fd, scans[i]); });
    for (const std::string& name : found.with_uploads) {
        scan_uploads(v2fd, name, purge_age_s, nullptr, stats.uploads, stats.uploads_purged);
    }

    auto manifests = parse_manifests(v2fd, scans, store, parse, threads, stats.skipped);
    for (RepoScan& r : scans) {
        for (const Digest& d : r.layers) {
            index.add_layer(r.name, d);
        }
        for (const Digest& d : r.revisions) {
            if (const ManifestPtr& m = manifests[d]) {
                index.put_manifest(r.name, m);
            }
        }
        for (auto& [tag, d] : r.tags) {
            index.set_tag(r.name, tag, d);
        }
        (void)index.repo(r.name);
        stats.skipped += r.skipped;
    }
    Index::Counts c = index.counts();
    stats.repos = c.repos;
    stats.tags = c.tags;
    stats.manifests = c.manifests;
    stats.layers = c.layers;
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return stats;
}

std::size_t purge_stale_uploads(int v2fd, Store& store, std::int64_t purge_age_s) {
    Found found;
    find_repos(v2fd, "repositories", "", 0, found);
    std::size_t kept = 0;
    std::size_t removed = 0;
    for (const std::string& name : found.with_uploads) {
        scan_uploads(v2fd, name, purge_age_s, &store, kept, removed);
    }
    return removed;
}

} // namespace rp::storage
