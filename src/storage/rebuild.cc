// SPDX-License-Identifier: Apache-2.0
#include "storage/rebuild.hh"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "storage/fs.hh"
#include "storage/link_reader.hh"
#include "storage/layout.hh"
#include "storage/names.hh"
#include "storage/snapshot.hh"
#include "storage/store.hh"
#include "util/assert.hh"
#include "util/strings.hh"
#include "util/unique_fd.hh"

namespace rp::storage {

using util::Errc;
using util::Error;
using util::Result;

namespace {

constexpr int walk_depth_max = 64;

struct Entry {
    std::string name;
    bool is_dir;
    ino_t ino;
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
        out.push_back(Entry{std::string(n), dir, e->d_ino});
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
    std::vector<std::string>* visited = nullptr; // every directory walked, if wanted
};

void find_repos(int v2fd, const std::string& rel, const std::string& name, int depth, Found& out) {
    if (depth > walk_depth_max) {
        return;
    }
    if (out.visited != nullptr) {
        out.visited->push_back(rel);
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

// Links under <dir>/<alg>/<hex>/link whose content names the same digest.
struct RepoScan {
    std::string name;
    std::vector<std::optional<Digest>> layers; // filled as link reads complete
    std::vector<std::optional<Digest>> revisions;
    std::vector<std::pair<std::string, std::optional<Digest>>> tags;
    std::size_t skipped = 0;
};

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

// Walks repositories/ with its top-level entries spread over threads (a
// cold walk of 10,000 repositories is 10,000 directory reads).
Found find_all(int v2fd, unsigned threads, std::vector<std::string>* visited = nullptr) {
    std::vector<Entry> top = list_dir(v2fd, "repositories");
    std::sort(top.begin(), top.end(), [](const Entry& a, const Entry& b) { return a.ino < b.ino; });
    std::vector<Found> parts(top.size());
    std::vector<std::vector<std::string>> seen(visited != nullptr ? top.size() : 0);
    if (visited != nullptr) {
        visited->push_back("repositories");
        for (std::size_t i = 0; i < top.size(); ++i) {
            parts[i].visited = &seen[i];
        }
    }
    parallel_for(top.size(), threads, [&](std::size_t i) {
        const Entry& e = top[i];
        if (e.is_dir && !e.name.empty() && e.name.front() != '_') {
            find_repos(v2fd, "repositories/" + e.name, e.name, 1, parts[i]);
        }
    });
    Found out;
    for (Found& p : parts) {
        out.repos.insert(out.repos.end(), std::make_move_iterator(p.repos.begin()),
                         std::make_move_iterator(p.repos.end()));
        out.with_uploads.insert(out.with_uploads.end(),
                                std::make_move_iterator(p.with_uploads.begin()),
                                std::make_move_iterator(p.with_uploads.end()));
        out.skipped += p.skipped;
    }
    for (auto& v : seen) {
        visited->insert(visited->end(), std::make_move_iterator(v.begin()),
                        std::make_move_iterator(v.end()));
    }
    return out;
}

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

std::optional<Digest> parse_link(std::string_view bytes, bool ok) {
    if (!ok) {
        return std::nullopt;
    }
    auto d = Digest::parse(util::trim(bytes));
    return d ? std::optional<Digest>(std::move(*d)) : std::nullopt;
}

// Queues reads of <dir>/<alg>/<hex>/link into `out`; a link counts only if
// it names the digest its path names (the pair of the check at commit).
void queue_digest_links(int v2fd, LinkReader& rd, const std::string& dir,
                        std::vector<std::optional<Digest>>& out) {
    std::vector<std::pair<std::string, std::string>> found;
    for (const Entry& alg : list_dir(v2fd, dir)) {
        for (const Entry& hex : list_dir(v2fd, dir + "/" + alg.name)) {
            found.emplace_back(alg.name, hex.name);
        }
    }
    out.resize(found.size());
    for (std::size_t i = 0; i < found.size(); ++i) {
        auto& [alg, hex] = found[i];
        std::string path = dir;
        path.append("/").append(alg).append("/").append(hex).append("/link");
        rd.read(std::move(path), [&out, i, alg = alg, hex = hex](std::string_view bytes, bool ok) {
            auto d = parse_link(bytes, ok);
            if (d && d->algorithm_name() == alg && d->hex() == hex) {
                out[i] = std::move(d);
            }
        });
    }
}

void scan_repo(int v2fd, LinkReader& rd, RepoScan& r) {
    queue_digest_links(v2fd, rd, layout::layers_dir(r.name), r.layers);
    queue_digest_links(v2fd, rd, layout::revisions_dir(r.name), r.revisions);
    // Read in inode order: on a cold cache the inodes and directory blocks
    // of tags made one after the other sit together on disk.
    std::vector<Entry> tags = list_dir(v2fd, layout::tags_dir(r.name));
    std::sort(tags.begin(), tags.end(),
              [](const Entry& a, const Entry& b) { return a.ino < b.ino; });
    for (const Entry& t : tags) {
        if (!t.is_dir || !valid_tag(t.name)) {
            ++r.skipped;
            continue;
        }
        r.tags.emplace_back(t.name, std::nullopt);
    }
    if (r.tags.empty()) {
        return;
    }
    // Resolve "<tag>/current/link" from the tags directory: half the path
    // lookups of a path from the root. The directory stays open until the
    // last of its reads completed (the callbacks share it).
    auto tags_fd = std::make_shared<util::UniqueFd>(
        ::openat(v2fd, layout::tags_dir(r.name).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!tags_fd->valid()) {
        r.skipped += r.tags.size();
        r.tags.clear();
        return;
    }
    for (std::size_t i = 0; i < r.tags.size(); ++i) {
        std::string rel = r.tags[i].first;
        rel += "/current/link";
        rd.read(tags_fd->get(), std::move(rel), [&r, i, tags_fd](std::string_view bytes, bool ok) {
            r.tags[i].second = parse_link(bytes, ok);
        });
    }
}

// Scans every repository on `threads` threads, each with its own LinkReader.
void scan_all(int v2fd, std::vector<RepoScan>& scans, unsigned threads) {
    std::atomic<std::size_t> next{0};
    auto worker = [&] {
        (void)pthread_setname_np(pthread_self(), "rp-rebuild");
        LinkReader rd(v2fd);
        if (!rd.init()) {
            util::fatal("rebuild: io_uring setup", EIO);
        }
        for (std::size_t i = next++; i < scans.size(); i = next++) {
            scan_repo(v2fd, rd, scans[i]);
        }
        rd.finish();
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

// Reads, verifies and parses each manifest in `todo` (distinct digests).
std::unordered_map<Digest, ManifestPtr, DigestHash>
parse_manifest_set(int v2fd, std::vector<Digest> todo, Store& store, const ManifestParser& parse,
                   unsigned threads, std::size_t& skipped) {
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
    std::unordered_map<Digest, ManifestPtr, DigestHash> manifests;
    for (std::size_t i = 0; i < todo.size(); ++i) {
        manifests[std::move(todo[i])] = std::move(parsed[i]);
    }
    skipped += bad.load();
    return manifests;
}

// Reads, verifies and parses every distinct manifest the repositories link.
std::unordered_map<Digest, ManifestPtr, DigestHash>
parse_manifests(int v2fd, const std::vector<RepoScan>& scans, Store& store,
                const ManifestParser& parse, unsigned threads, std::size_t& skipped) {
    std::unordered_set<Digest, DigestHash> distinct;
    for (const RepoScan& r : scans) {
        for (const auto& d : r.revisions) {
            if (d) {
                distinct.insert(*d);
            }
        }
    }
    return parse_manifest_set(v2fd, std::vector<Digest>(distinct.begin(), distinct.end()), store,
                              parse, threads, skipped);
}

// One repository's scan as an index load; `find` gives a revision's
// ManifestInfo (null: unreadable or invalid, skipped).
template <typename Find> Index::RepoLoad make_load(RepoScan& r, Find&& find, std::size_t& skipped) {
    Index::RepoLoad load;
    skipped += r.skipped;
    for (auto& d : r.layers) {
        if (d) {
            load.layers.push_back(std::move(*d));
        } else {
            ++skipped; // a broken or mismatched link
        }
    }
    for (auto& d : r.revisions) {
        ManifestPtr m = d ? find(*d) : nullptr;
        if (m) {
            load.manifests.push_back(std::move(m));
        } else {
            ++skipped;
        }
    }
    for (auto& [tag, d] : r.tags) {
        if (d) {
            load.tags.emplace_back(std::move(tag), std::move(*d));
        } else {
            ++skipped;
        }
    }
    return load;
}

// Moves one repository's scan into the index; returns the entries skipped.
std::size_t load_repo(Index& index, RepoScan& r,
                      std::unordered_map<Digest, ManifestPtr, DigestHash>& manifests) {
    std::size_t skipped = 0;
    auto find = [&](const Digest& d) {
        auto it = manifests.find(d);
        return it == manifests.end() ? nullptr : it->second;
    };
    index.load_repo(r.name, make_load(r, find, skipped));
    r = RepoScan{}; // free the scan as we go: the index holds it now
    return skipped;
}

// The directories whose state vouches for a repository's links: a link
// added or removed changes its parent's mtime (`_layers/<alg>`,
// `_manifests/revisions/<alg>`, `_manifests/tags`). Paths relative to the
// repository.
std::vector<DirStamp> repo_dirs(int v2fd, const std::string& name) {
    std::string base = layout::repo_dir(name) + "/";
    std::vector<std::string> rel = {"_layers", "_manifests", "_manifests/revisions",
                                    "_manifests/tags"};
    for (std::string parent : {"_layers", "_manifests/revisions"}) {
        for (const Entry& e : list_dir(v2fd, base + parent)) {
            if (e.is_dir) {
                rel.push_back(parent + "/" + e.name);
            }
        }
    }
    std::vector<DirStamp> out;
    out.reserve(rel.size());
    for (std::string& r : rel) {
        DirStamp s = stamp_dir(v2fd, base + r);
        s.path = std::move(r);
        out.push_back(std::move(s));
    }
    return out;
}

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void finish_stats(const Index& index, RebuildStats& stats,
                  std::chrono::steady_clock::time_point t0) {
    Index::Counts c = index.counts();
    stats.repos = c.repos;
    stats.tags = c.tags;
    stats.manifests = c.manifests;
    stats.layers = c.layers;
    stats.seconds = since(t0);
}

} // namespace

Result<RebuildStats> rebuild(int v2fd, Index& index, Store& store, const ManifestParser& parse,
                             std::int64_t purge_age_s, unsigned threads) {
    auto t0 = std::chrono::steady_clock::now();
    RebuildStats stats;
    Found found = find_all(v2fd, threads < 8 ? 8 : threads);
    stats.walk_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats.skipped += found.skipped;
    std::vector<RepoScan> scans(found.repos.size());
    for (std::size_t i = 0; i < found.repos.size(); ++i) {
        scans[i].name = found.repos[i];
    }
    // Many link reads in flight hide a cold cache's latency: use more threads
    // than cores (they mostly wait), each keeping 64 reads in flight.
    scan_all(v2fd, scans, threads < 8 ? 8 : threads);
    stats.scan_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const std::string& name : found.with_uploads) {
        scan_uploads(v2fd, name, purge_age_s, nullptr, stats.uploads, stats.uploads_purged);
    }

    auto manifests = parse_manifests(v2fd, scans, store, parse, threads, stats.skipped);
    for (RepoScan& r : scans) {
        stats.skipped += load_repo(index, r, manifests);
    }
    finish_stats(index, stats, t0);
    return stats;
}

Result<std::optional<std::string>> take_snapshot(int rootfd, bool use) {
    const std::string file(snapshot_file);
    std::optional<std::string> bytes;
    if (use) {
        auto b = blocking::read_file(rootfd, file, std::size_t{1} << 36);
        if (b) {
            bytes = std::move(*b);
        } else if (b.error().sys_errno == ENOENT) {
            return bytes;
        }
    }
    if (::unlinkat(rootfd, file.c_str(), 0) != 0) {
        if (errno == ENOENT) {
            return bytes;
        }
        return Error::sys(errno, "remove " + file +
                                     " (an index snapshot that stays could be trusted after a "
                                     "crash; remove it, or fix the root's permissions)");
    }
    if (::fsync(rootfd) != 0) {
        return Error::sys(errno, "fsync the root after removing " + file);
    }
    return bytes;
}

Result<RebuildStats> load_snapshot(std::string bytes, int v2fd, Index& index, Store& store,
                                   const ManifestParser& parse, std::int64_t purge_age_s,
                                   unsigned threads) {
    auto t0 = std::chrono::steady_clock::now();
    auto rd = SnapshotReader::open(std::move(bytes));
    if (!rd) {
        return std::move(rd).error();
    }
    // Many stats in flight: on a cold cache each waits for the disk.
    const unsigned stat_threads = 32;
    std::atomic<bool> walk_changed{false};
    const auto& walk = rd->walk();
    parallel_for(walk.size(), stat_threads, [&](std::size_t i) {
        if (!walk_changed && !stamp_dir(v2fd, walk[i].path).same_state(walk[i])) {
            walk_changed = true;
        }
    });
    if (walk.empty() || walk_changed) {
        return Error::of(Errc::invalid, "the repositories tree changed since the snapshot");
    }
    std::vector<Digest> digests;
    digests.reserve(rd->digests().size());
    for (const std::string& d : rd->digests()) {
        auto p = Digest::parse(d);
        if (!p) {
            return Error::of(Errc::invalid, "index snapshot: bad digest " + d);
        }
        digests.push_back(std::move(*p));
    }
    auto& heads = rd->repos();
    std::vector<char> stale(heads.size(), 0);
    parallel_for(heads.size(), stat_threads, [&](std::size_t i) {
        std::string base = layout::repo_dir(heads[i].name) + "/";
        for (const DirStamp& d : heads[i].dirs) {
            if (!stamp_dir(v2fd, base + d.path).same_state(d)) {
                stale[i] = 1;
                return;
            }
        }
    });
    RebuildStats stats;
    stats.from_snapshot = true;
    // An _uploads directory made while stopped changed its parent (a walk
    // directory): every one there is is listed here.
    for (const std::string& name : rd->uploads()) {
        scan_uploads(v2fd, name, purge_age_s, nullptr, stats.uploads, stats.uploads_purged);
    }
    std::vector<RepoScan> rescans;
    for (std::size_t i = 0; i < heads.size(); ++i) {
        if (stale[i] != 0) {
            rescans.emplace_back().name = heads[i].name;
        }
    }
    stats.rescanned = rescans.size();
    scan_all(v2fd, rescans, threads < 8 ? 8 : threads);
    stats.walk_seconds = since(t0);
    std::unordered_set<Digest, DigestHash> distinct;
    for (std::size_t i = 0; i < heads.size(); ++i) {
        if (stale[i] == 0) {
            for (std::uint32_t id : heads[i].manifests) {
                distinct.insert(digests[id]);
            }
        }
    }
    for (const RepoScan& r : rescans) {
        for (const auto& d : r.revisions) {
            if (d) {
                distinct.insert(*d);
            }
        }
    }
    auto manifests = parse_manifest_set(v2fd, std::vector<Digest>(distinct.begin(), distinct.end()),
                                        store, parse, threads, stats.skipped);
    stats.scan_seconds = since(t0);
    for (std::size_t i = 0; i < heads.size(); ++i) {
        if (stale[i] != 0) {
            continue;
        }
        auto tags = rd->tags(heads[i]);
        RP_ASSERT(tags.has_value()); // open() checked every tags part
        Index::RepoLoad load;
        for (std::uint32_t id : heads[i].layers) {
            load.layers.push_back(digests[id]);
        }
        for (std::uint32_t id : heads[i].manifests) {
            auto it = manifests.find(digests[id]);
            if (it != manifests.end() && it->second) {
                load.manifests.push_back(it->second);
            } else {
                ++stats.skipped;
            }
        }
        load.tags.reserve(tags->size());
        for (auto& [tag, id] : *tags) {
            load.tags.emplace_back(std::move(tag), digests[id]);
        }
        index.load_repo(heads[i].name, std::move(load));
        std::vector<DirStamp>().swap(heads[i].dirs); // free as we go
    }
    for (RepoScan& r : rescans) {
        stats.skipped += load_repo(index, r, manifests);
    }
    finish_stats(index, stats, t0);
    return stats;
}

VerifyStats verify_index(int v2fd, Index& index, Store& store, const ManifestParser& parse,
                         std::int64_t purge_age_s, unsigned threads,
                         const std::atomic<bool>& stop) {
    auto t0 = std::chrono::steady_clock::now();
    VerifyStats vs;
    // Every repository the index knows, also those it holds nothing for.
    std::vector<std::string> todo = index.repo_names(true);
    constexpr std::size_t batch = 256; // repositories read at once: bounded memory
    constexpr int passes = 3;          // a repository written to meanwhile is read again
    for (int pass = 0; pass < passes && !todo.empty() && !vs.stopped; ++pass) {
        std::vector<std::string> again;
        for (std::size_t at = 0; at < todo.size(); at += batch) {
            if (stop) {
                vs.stopped = true;
                break;
            }
            std::size_t end = std::min(todo.size(), at + batch);
            std::vector<RepoScan> scans(end - at);
            std::vector<std::uint64_t> gens(end - at);
            for (std::size_t i = at; i < end; ++i) {
                scans[i - at].name = todo[i];
                gens[i - at] = index.generation(todo[i]).value_or(0); // before the disk is read
            }
            scan_all(v2fd, scans, threads < 8 ? 8 : threads);
            std::unordered_set<Digest, DigestHash> unknown;
            for (const RepoScan& r : scans) {
                for (const auto& d : r.revisions) {
                    if (d && !index.shared_manifest(*d)) {
                        unknown.insert(*d);
                    }
                }
            }
            std::size_t skipped = 0;
            auto parsed =
                parse_manifest_set(v2fd, std::vector<Digest>(unknown.begin(), unknown.end()), store,
                                   parse, threads, skipped);
            auto find = [&](const Digest& d) -> ManifestPtr {
                if (ManifestPtr m = index.shared_manifest(d)) {
                    return m;
                }
                auto it = parsed.find(d);
                return it == parsed.end() ? nullptr : it->second;
            };
            for (std::size_t i = 0; i < scans.size(); ++i) {
                std::string name = scans[i].name;
                Index::RepoLoad load = make_load(scans[i], find, skipped);
                if (pass == 0) {
                    ++vs.repos;
                }
                if (index.same_content(name, load)) {
                    continue;
                }
                if (index.replace_repo(name, gens[i], std::move(load))) {
                    ++vs.corrected;
                } else {
                    again.push_back(std::move(name));
                }
            }
        }
        todo = std::move(again);
    }
    vs.kept_live = vs.stopped ? 0 : todo.size();
    if (!vs.stopped) {
        Found found = find_all(v2fd, 2);
        std::size_t kept = 0;
        for (const std::string& name : found.with_uploads) {
            scan_uploads(v2fd, name, purge_age_s, &store, kept, vs.uploads_purged);
        }
    }
    vs.seconds = since(t0);
    return vs;
}

Result<std::size_t> write_snapshot(int rootfd, int v2fd, const Index& index, unsigned threads) {
    SnapshotWriter w;
    std::vector<std::string> visited;
    Found found = find_all(v2fd, threads, &visited);
    for (std::string& p : visited) {
        w.walk_dir(stamp_dir(v2fd, std::move(p)));
    }
    for (const std::string& name : found.with_uploads) {
        w.uploads_repo(name);
    }
    // Every repository on disk gets its directories stamped, also one the
    // index holds nothing for (all deleted, or only broken links): a link
    // added to it while stopped must show as a changed directory.
    std::set<std::string> names(found.repos.begin(), found.repos.end());
    for (std::string& n : index.repo_names()) {
        names.insert(std::move(n));
    }
    for (const std::string& name : names) {
        auto c = index.content(name).value_or(Index::RepoContent{});
        SnapshotRepo r;
        r.name = name;
        r.dirs = repo_dirs(v2fd, name);
        for (const Digest& d : c.layers) {
            r.layers.push_back(w.digest(d.str()));
        }
        for (const Digest& d : c.manifests) {
            r.manifests.push_back(w.digest(d.str()));
        }
        r.tags.reserve(c.tags.size());
        for (auto& [tag, d] : c.tags) {
            r.tags.emplace_back(std::move(tag), w.digest(d.str()));
        }
        w.repo(r);
    }
    std::string bytes = w.finish();
    const std::string file(snapshot_file);
    std::string tmp = file + ".tmp";
    util::UniqueFd fd(
        ::openat(rootfd, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) {
        return Error::sys(errno, "create " + tmp);
    }
    std::size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = ::write(fd.get(), bytes.data() + off, bytes.size() - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            (void)::unlinkat(rootfd, tmp.c_str(), 0);
            return Error::sys(e, "write " + tmp);
        }
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0 || ::renameat(rootfd, tmp.c_str(), rootfd, file.c_str()) != 0 ||
        ::fsync(rootfd) != 0) {
        int e = errno;
        (void)::unlinkat(rootfd, tmp.c_str(), 0);
        return Error::sys(e, "write " + file);
    }
    return bytes.size();
}

std::size_t purge_stale_uploads(int v2fd, Store& store, std::int64_t purge_age_s) {
    Found found = find_all(v2fd, 2);
    std::size_t kept = 0;
    std::size_t removed = 0;
    for (const std::string& name : found.with_uploads) {
        scan_uploads(v2fd, name, purge_age_s, &store, kept, removed);
    }
    return removed;
}

} // namespace rp::storage
