// SPDX-License-Identifier: Apache-2.0
#include "storage/tree_scan.hh"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <unordered_set>

#include "storage/fs.hh"
#include "storage/layout.hh"
#include "storage/link_reader.hh"
#include "storage/names.hh"
#include "storage/store.hh"
#include "util/strings.hh"
#include "util/unique_fd.hh"

namespace rp::storage::tree {

namespace {

constexpr int walk_depth_max = 64;

void find_repos(int v2fd, const std::string& rel, const std::string& name, int depth, Found& out) {
    if (depth > walk_depth_max || (out.stop != nullptr && out.stop->load())) {
        return;
    }
    if (out.visited != nullptr) {
        out.visited->push_back(rel);
    }
    reactor::pace();
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

} // namespace

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

std::vector<Digest> list_blobs(int v2fd, std::vector<std::string>* without_data) {
    std::vector<Digest> out;
    for (Algorithm alg : {Algorithm::sha256, Algorithm::sha512}) {
        std::string alg_dir = "blobs/" + std::string(algorithm_name(alg));
        int afd = ::openat(v2fd, alg_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (afd < 0) {
            continue;
        }
        DIR* a = ::fdopendir(afd);
        if (a == nullptr) {
            ::close(afd);
            continue;
        }
        while (dirent* pe = ::readdir(a)) {
            std::string_view prefix = pe->d_name;
            if (prefix.size() != 2 || !util::is_lower_hex(prefix)) {
                continue;
            }
            int pfd = ::openat(afd, pe->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            DIR* p = pfd < 0 ? nullptr : ::fdopendir(pfd);
            if (p == nullptr) {
                if (pfd >= 0) {
                    ::close(pfd);
                }
                continue;
            }
            while (dirent* be = ::readdir(p)) {
                std::string_view hex = be->d_name;
                if (hex.size() != digest_hex_len(alg) || !hex.starts_with(prefix) ||
                    !util::is_lower_hex(hex)) {
                    continue;
                }
                std::string data(hex);
                data += "/data";
                struct stat st {};
                if (::fstatat(pfd, data.c_str(), &st, 0) != 0 || !S_ISREG(st.st_mode)) {
                    if (without_data != nullptr) {
                        without_data->push_back(alg_dir + "/" + std::string(prefix) + "/" +
                                                std::string(hex));
                    }
                    continue;
                }
                std::string s(algorithm_name(alg));
                s += ':';
                s += hex;
                if (auto d = Digest::parse(s)) {
                    out.push_back(std::move(*d));
                }
            }
            ::closedir(p);
        }
        ::closedir(a);
    }
    std::sort(out.begin(), out.end());
    return out;
}

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

Found find_all(int v2fd, unsigned threads, std::vector<std::string>* visited,
               const std::atomic<bool>* stop) {
    std::vector<Entry> top = list_dir(v2fd, "repositories");
    std::sort(top.begin(), top.end(), [](const Entry& a, const Entry& b) { return a.ino < b.ino; });
    std::vector<Found> parts(top.size());
    for (Found& p : parts) {
        p.stop = stop;
    }
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

void scan_all(int v2fd, std::vector<RepoScan>& scans, unsigned threads,
              const std::atomic<bool>* stop) {
    std::atomic<std::size_t> next{0};
    auto worker = [&] {
        LinkReader rd(v2fd);
        if (!rd.init()) {
            util::fatal("rebuild: io_uring setup", EIO);
        }
        for (std::size_t i = next++; i < scans.size(); i = next++) {
            if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
                break;
            }
            scan_repo(v2fd, rd, scans[i]);
            reactor::pace();
        }
        rd.finish();
    };
    on_threads(threads, worker);
}

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
        m->body = store.cache_body(std::move(m->body)); // null over the budget
        parsed[i] = std::move(m);
    });
    std::unordered_map<Digest, ManifestPtr, DigestHash> manifests;
    for (std::size_t i = 0; i < todo.size(); ++i) {
        manifests[std::move(todo[i])] = std::move(parsed[i]);
    }
    skipped += bad.load();
    return manifests;
}

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

} // namespace rp::storage::tree
