// SPDX-License-Identifier: Apache-2.0
#include "storage/rebuild.hh"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "storage/fs.hh"
#include "storage/journal.hh"
#include "storage/layout.hh"
#include "storage/snapshot.hh"
#include "storage/tree_scan.hh"
#include "storage/store.hh"
#include "util/assert.hh"
#include "util/unique_fd.hh"

namespace rp::storage {

using util::Errc;
using util::Error;
using util::Result;
using namespace tree; // the tree-reading steps these procedures are made of

namespace {

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
                             std::int64_t purge_age_s, unsigned threads,
                             const std::atomic<bool>* stop) {
    auto t0 = std::chrono::steady_clock::now();
    RebuildStats stats;
    Found found = find_all(v2fd, threads < 8 ? 8 : threads, nullptr, stop);
    stats.walk_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats.skipped += found.skipped;
    std::vector<RepoScan> scans(found.repos.size());
    for (std::size_t i = 0; i < found.repos.size(); ++i) {
        scans[i].name = found.repos[i];
    }
    // Many link reads in flight hide a cold cache's latency: use more threads
    // than cores (they mostly wait), each keeping 64 reads in flight.
    scan_all(v2fd, scans, threads < 8 ? 8 : threads, stop);
    if (stop != nullptr && stop->load()) {
        return Error::of(Errc::stopped, "index load stopped by shutdown");
    }
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

Result<std::optional<std::string>> read_snapshot(int rootfd, bool use) {
    const std::string file(snapshot_file);
    std::optional<std::string> bytes;
    if (use) {
        auto b = blocking::read_file(rootfd, file, std::size_t{1} << 36);
        if (b) {
            bytes = std::move(*b);
        } else if (b.error().sys_errno != ENOENT) {
            return std::move(b).error();
        }
        return bytes;
    }
    if (::unlinkat(rootfd, file.c_str(), 0) != 0 && errno != ENOENT) {
        return Error::sys(errno, "remove " + file +
                                     " (an index snapshot that stays could be trusted by a "
                                     "later start; remove it, or fix the root's permissions)");
    }
    if (auto r = WriteJournal::remove(rootfd); !r) {
        return std::move(r).error();
    }
    return bytes;
}

namespace {

// Which of the snapshot's repositories must be read from disk: those its
// journal names (written since the save), those whose directories changed,
// and, when the repositories walk changed, those that appeared; those that
// disappeared are dropped. Fills `rescans` and `stale` (per snapshot repo);
// `uploads` gets the repositories with an _uploads directory.
void plan_rescans(int v2fd, SnapshotReader& rd, const std::vector<std::string>& dirty,
                  unsigned threads, std::vector<char>& stale, std::vector<RepoScan>& rescans,
                  std::vector<std::string>& uploads) {
    const unsigned stat_threads = 32; // many stats in flight: on a cold cache each waits
    std::atomic<bool> walk_changed{false};
    const auto& walk = rd.walk();
    parallel_for(walk.size(), stat_threads, [&](std::size_t i) {
        if (!walk_changed && !stamp_dir(v2fd, walk[i].path).same_state(walk[i])) {
            walk_changed = true;
        }
    });
    auto& heads = rd.repos();
    stale.assign(heads.size(), 0);
    std::set<std::string> known;
    for (std::size_t i = 0; i < heads.size(); ++i) {
        known.insert(heads[i].name);
    }
    std::set<std::string> extra(dirty.begin(), dirty.end());
    uploads = rd.uploads();
    if (walk_changed) {
        // Repositories came or went: the walk (directory reads, no links) says
        // which; only those, the dirty ones and the changed ones are read.
        Found found = find_all(v2fd, threads < 8 ? 8 : threads);
        std::set<std::string> present(found.repos.begin(), found.repos.end());
        for (std::size_t i = 0; i < heads.size(); ++i) {
            if (!present.contains(heads[i].name)) {
                stale[i] = 2; // gone: not loaded
            }
        }
        for (const std::string& n : found.repos) {
            if (!known.contains(n)) {
                extra.insert(n);
            }
        }
        uploads = std::move(found.with_uploads);
    }
    parallel_for(heads.size(), stat_threads, [&](std::size_t i) {
        if (stale[i] != 0) {
            return;
        }
        if (extra.contains(heads[i].name)) {
            stale[i] = 1;
            return;
        }
        std::string base = layout::repo_dir(heads[i].name) + "/";
        for (const DirStamp& d : heads[i].dirs) {
            if (!stamp_dir(v2fd, base + d.path).same_state(d)) {
                stale[i] = 1;
                return;
            }
        }
    });
    for (std::size_t i = 0; i < heads.size(); ++i) {
        if (stale[i] == 1) {
            rescans.emplace_back().name = heads[i].name;
        }
        extra.erase(heads[i].name);
    }
    for (const std::string& n : extra) { // new, or named by the journal and not in the snapshot
        rescans.emplace_back().name = n;
    }
}

} // namespace

Result<RebuildStats> load_snapshot(std::string bytes, const std::vector<std::string>& dirty,
                                   int v2fd, Index& index, Store& store,
                                   const ManifestParser& parse, std::int64_t purge_age_s,
                                   unsigned threads) {
    auto t0 = std::chrono::steady_clock::now();
    auto rd = SnapshotReader::open(std::move(bytes));
    if (!rd) {
        return std::move(rd).error();
    }
    if (rd->walk().empty()) {
        return Error::of(Errc::invalid, "the snapshot holds no repositories walk");
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
    std::vector<char> stale;
    std::vector<RepoScan> rescans;
    std::vector<std::string> uploads;
    plan_rescans(v2fd, *rd, dirty, threads, stale, rescans, uploads);
    RebuildStats stats;
    stats.from_snapshot = true;
    for (const std::string& name : uploads) {
        scan_uploads(v2fd, name, purge_age_s, nullptr, stats.uploads, stats.uploads_purged);
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

namespace {

// <root>/.ringport.index.tmp, written in the pieces a SnapshotWriter hands
// over, then made durable and renamed over the snapshot.
class SnapshotFile {
  public:
    explicit SnapshotFile(int rootfd) : rootfd_(rootfd) {}
    ~SnapshotFile() {
        if (fd_.valid() && !done_) {
            (void)::unlinkat(rootfd_, tmp_.c_str(), 0);
        }
    }
    SnapshotFile(const SnapshotFile&) = delete;
    SnapshotFile& operator=(const SnapshotFile&) = delete;

    Result<void> open() {
        fd_ = util::UniqueFd(
            ::openat(rootfd_, tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd_.valid()) {
            return Error::sys(errno, "create " + tmp_);
        }
        return util::Ok{};
    }
    // Each piece is written back at once, so the fdatasync at the end (and
    // the journal commit it forces, which competes with the shards for the
    // CPU) has little left to do.
    bool append(std::string_view piece) {
        if (auto w = blocking::write_all(fd_.get(), piece, size_); !w) {
            errno_ = w.error().sys_errno;
            return false;
        }
        size_ += piece.size();
        (void)::sync_file_range(fd_.get(), 0, static_cast<off_t>(size_),
                                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER);
        return true;
    }
    // The header at offset 0, then fdatasync, rename, fsync of <root>.
    Result<void> commit(std::string_view header) {
        if (header.empty()) {
            return Error::sys(errno_ != 0 ? errno_ : EIO, "write " + tmp_);
        }
        if (auto w = blocking::write_all(fd_.get(), header, 0); !w) {
            return Error::sys(w.error().sys_errno, "write " + tmp_);
        }
        const std::string file(snapshot_file);
        if (::fdatasync(fd_.get()) != 0 ||
            ::renameat(rootfd_, tmp_.c_str(), rootfd_, file.c_str()) != 0) {
            return Error::sys(errno, "write " + file);
        }
        done_ = true;
        if (::fsync(rootfd_) != 0) {
            return Error::sys(errno, "fsync of the root after writing " + file);
        }
        return util::Ok{};
    }
    std::uint64_t size() const noexcept { return size_; }

  private:
    int rootfd_;
    std::string tmp_ = std::string(snapshot_file) + ".tmp";
    util::UniqueFd fd_;
    std::uint64_t size_ = 0;
    int errno_ = 0;
    bool done_ = false;
};

// Encodes the snapshot into `w`. Each repository's directories are stamped
// before its part of the index is read, the directories above them before
// any: a write that lands in between changes a stamped directory (read
// again at the next start) or is in the journal, never lost. A batch of
// repositories at a time, written out as it goes: a save holds the digest
// table, a batch's stamps and content and a piece of the file. `writing`
// gets the repositories whose writer held the write lock while they were
// read.
void encode_snapshot(int v2fd, const Index& index, unsigned threads, SnapshotWriter& w,
                     std::vector<std::string>& writing, const IndexReads& reads) {
    auto run = [&reads](const std::function<void()>& fn) {
        if (reads) {
            reads(fn);
        } else {
            fn();
        }
    };
    std::vector<std::string> visited;
    Found found = find_all(v2fd, threads, &visited);
    for (std::string& p : visited) {
        w.walk_dir(stamp_dir(v2fd, std::move(p)));
        reactor::pace();
    }
    std::vector<std::string>().swap(visited);
    for (const std::string& name : found.with_uploads) {
        w.uploads_repo(name);
    }
    // Every repository on disk gets its directories stamped, also one the
    // index holds nothing for (all deleted, or only broken links): a link
    // added to it while stopped must show as a changed directory. A state a
    // writer holds without content yet is included, so its writer is seen.
    std::set<std::string> names(std::make_move_iterator(found.repos.begin()),
                                std::make_move_iterator(found.repos.end()));
    found = Found{};
    std::vector<std::string> known;
    run([&] { known = index.repo_names(true); });
    for (std::string& n : known) {
        names.insert(std::move(n));
    }
    std::vector<std::string>().swap(known);
    // A batch at a time: its repositories stamped, then their parts of the
    // index read in one run of `reads`, then encoded.
    constexpr std::size_t batch = 64;
    std::vector<std::string> part;
    std::vector<std::vector<DirStamp>> dirs(batch);
    std::vector<Index::RepoContent> contents(batch);
    std::vector<char> busy(batch);
    SnapshotRepo r;
    for (auto it = names.begin(); it != names.end();) {
        part.clear();
        for (; it != names.end() && part.size() < batch; ++it) {
            dirs[part.size()] = repo_dirs(v2fd, *it);
            part.push_back(*it);
            reactor::pace();
        }
        run([&] {
            for (std::size_t i = 0; i < part.size(); ++i) {
                bool b = false;
                contents[i] = index.content(part[i], &b).value_or(Index::RepoContent{});
                busy[i] = b ? 1 : 0;
            }
        });
        for (std::size_t i = 0; i < part.size(); ++i) {
            r.name = part[i];
            r.dirs = std::move(dirs[i]);
            if (busy[i] != 0) {
                writing.push_back(r.name);
            }
            Index::RepoContent& c = contents[i];
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
            r.layers.clear();
            r.manifests.clear();
            r.tags.clear();
            c = Index::RepoContent{};
            reactor::pace();
        }
    }
}

} // namespace

Result<std::size_t> write_snapshot(int rootfd, int v2fd, const Index& index, WriteJournal* journal,
                                   unsigned threads, const IndexReads& reads) {
    if (journal != nullptr) {
        if (auto b = journal->begin_save(); !b) {
            journal->abort_save();
            return std::move(b).error();
        }
    }
    Result<void> r = util::Ok{};
    std::uint64_t size = 0;
    {
        SnapshotFile file(rootfd);
        r = file.open();
        if (r) {
            SnapshotWriter w([&file](std::string_view piece) { return file.append(piece); });
            std::vector<std::string> writing;
            encode_snapshot(v2fd, index, threads, w, writing, reads);
            std::string header = w.finish();
            // Recorded before the rename: once the snapshot is in place, the
            // journal names every repository whose writer it may have missed.
            if (journal != nullptr && !header.empty()) {
                r = journal->add_blocking(writing);
            }
            if (r) {
                r = file.commit(header);
            }
            size = file.size();
        }
    }
    if (r && journal != nullptr) {
        r = journal->commit_save();
    }
    if (!r) {
        if (journal != nullptr) {
            journal->abort_save();
        }
        return std::move(r).error();
    }
    return static_cast<std::size_t>(size);
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
