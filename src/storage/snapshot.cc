// SPDX-License-Identifier: Apache-2.0
#include "storage/snapshot.hh"

#include <fcntl.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <cstring>
#include <unordered_set>

#include "storage/names.hh"
#include "util/assert.hh"

namespace rp::storage {

using util::Errc;
using util::Error;
using util::Result;

namespace {

constexpr std::string_view magic = "RPINDEX2";
constexpr std::size_t header_bytes = 8 + 8 + 8;

template <typename T> void put(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T)); // the machine's order: the file never leaves it
    out.append(b, sizeof(T));
}

void put_str(std::string& out, std::string_view s) {
    put<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}

void put_stamp(std::string& out, const DirStamp& s) {
    put_str(out, s.path);
    put(out, s.ino);
    put(out, s.mtime_ns);
    put(out, s.ctime_ns);
}

void put_ids(std::string& out, const std::vector<std::uint32_t>& ids) {
    put<std::uint32_t>(out, static_cast<std::uint32_t>(ids.size()));
    for (std::uint32_t id : ids) {
        put(out, id);
    }
}

// A bounds-checked cursor: every read past the end fails the whole decode.
struct Cursor {
    std::string_view b;
    std::size_t at = 0;
    bool bad = false;

    template <typename T> T get() {
        T v{};
        if (bad || b.size() - at < sizeof(T)) {
            bad = true;
            return v;
        }
        std::memcpy(&v, b.data() + at, sizeof(T));
        at += sizeof(T);
        return v;
    }
    // A string in place: for checking, where nothing is kept.
    std::string_view view() {
        auto n = get<std::uint32_t>();
        if (bad || b.size() - at < n) {
            bad = true;
            return {};
        }
        std::string_view s = b.substr(at, n);
        at += n;
        return s;
    }
    std::string str() { return std::string(view()); }
    DirStamp stamp() {
        DirStamp s;
        s.path = str();
        s.ino = get<std::uint64_t>();
        s.mtime_ns = get<std::int64_t>();
        s.ctime_ns = get<std::int64_t>();
        return s;
    }
    // A count whose items take at least `min_bytes` each: a corrupt count
    // cannot make the decoder reserve more than the file could hold.
    std::uint32_t count(std::size_t min_bytes) {
        auto n = get<std::uint32_t>();
        if (!bad && n > (b.size() - at) / min_bytes) {
            bad = true;
            return 0;
        }
        return n;
    }
    std::vector<std::uint32_t> ids(std::size_t limit) {
        std::uint32_t n = count(4);
        std::vector<std::uint32_t> out;
        out.reserve(n);
        for (std::uint32_t i = 0; i < n && !bad; ++i) {
            auto id = get<std::uint32_t>();
            bad = bad || id >= limit;
            out.push_back(id);
        }
        return out;
    }
};

// A stamp path names a directory under the v2 tree: relative, no "..".
bool safe_path(std::string_view p) {
    if (p.empty() || p.front() == '/') {
        return false;
    }
    for (std::size_t at = 0; at <= p.size();) {
        std::size_t end = p.find('/', at);
        if (end == std::string_view::npos) {
            end = p.size();
        }
        std::string_view part = p.substr(at, end - at);
        if (part.empty() || part == "." || part == "..") {
            return false;
        }
        at = end + 1;
    }
    return true;
}

Error corrupt(const char* what) {
    return Error::of(Errc::invalid, std::string("index snapshot: ") + what);
}

} // namespace

DirStamp stamp_dir(int dirfd, std::string path) {
    DirStamp s;
    struct stat st {};
    if (::fstatat(dirfd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
        s.ino = st.st_ino;
        s.mtime_ns = st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec;
        s.ctime_ns = st.st_ctim.tv_sec * 1'000'000'000LL + st.st_ctim.tv_nsec;
    }
    s.path = std::move(path);
    return s;
}

std::uint32_t SnapshotWriter::digest(const std::string& d) {
    auto [it, added] = numbers_.try_emplace(d, static_cast<std::uint32_t>(digests_.size()));
    if (added) {
        digests_.push_back(d);
    }
    return it->second;
}

void SnapshotWriter::walk_dir(const DirStamp& s) {
    put_stamp(walk_, s);
    ++walk_n_;
}

void SnapshotWriter::uploads_repo(const std::string& name) { uploads_.push_back(name); }

void SnapshotWriter::repo(const SnapshotRepo& r) {
    put_str(repos_, r.name);
    put<std::uint32_t>(repos_, static_cast<std::uint32_t>(r.dirs.size()));
    for (const DirStamp& d : r.dirs) {
        put_stamp(repos_, d);
    }
    put_ids(repos_, r.layers);
    put_ids(repos_, r.manifests);
    // The tags part's length, then the part, written in place.
    std::size_t len_at = repos_.size();
    put<std::uint64_t>(repos_, 0);
    std::size_t start = repos_.size();
    put<std::uint32_t>(repos_, static_cast<std::uint32_t>(r.tags.size()));
    for (const auto& [tag, id] : r.tags) {
        put_str(repos_, tag);
        put(repos_, id);
    }
    auto len = static_cast<std::uint64_t>(repos_.size() - start);
    std::memcpy(repos_.data() + len_at, &len, sizeof len);
    ++repos_n_;
}

// One allocation of the exact size, the parts freed as they are copied: a
// save's peak is the parts plus the file, not several growing copies of it.
std::string SnapshotWriter::finish() {
    std::size_t size = header_bytes + 4 + 4 + walk_.size() + 4 + 4 + repos_.size();
    for (const std::string& d : digests_) {
        size += 4 + d.size();
    }
    for (const std::string& u : uploads_) {
        size += 4 + u.size();
    }
    std::string out;
    out.reserve(size);
    out.append(magic);
    put<std::uint64_t>(out, size - header_bytes);
    put<std::uint64_t>(out, 0); // the checksum, once the payload is there
    put<std::uint32_t>(out, static_cast<std::uint32_t>(digests_.size()));
    for (const std::string& d : digests_) {
        put_str(out, d);
    }
    std::vector<std::string>().swap(digests_);
    std::unordered_map<std::string, std::uint32_t>().swap(numbers_);
    put(out, walk_n_);
    out.append(walk_);
    std::string().swap(walk_);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(uploads_.size()));
    for (const std::string& u : uploads_) {
        put_str(out, u);
    }
    put(out, repos_n_);
    out.append(repos_);
    std::string().swap(repos_);
    RP_ASSERT(out.size() == size);
    std::uint64_t sum = XXH3_64bits(out.data() + header_bytes, size - header_bytes);
    std::memcpy(out.data() + magic.size() + 8, &sum, sizeof sum);
    return out;
}

Result<SnapshotReader> SnapshotReader::open(std::string bytes) {
    SnapshotReader r;
    r.bytes_ = std::move(bytes);
    std::string_view all = r.bytes_;
    if (all.size() < header_bytes || all.substr(0, magic.size()) != magic) {
        return corrupt("not a snapshot of this version");
    }
    Cursor h{all.substr(magic.size(), 16)};
    auto len = h.get<std::uint64_t>();
    auto sum = h.get<std::uint64_t>();
    std::string_view payload = all.substr(header_bytes);
    if (len != payload.size() || XXH3_64bits(payload.data(), payload.size()) != sum) {
        return corrupt("truncated or damaged (checksum)");
    }
    Cursor c{payload};
    std::uint32_t n = c.count(4);
    r.digests_.reserve(n);
    for (std::uint32_t i = 0; i < n && !c.bad; ++i) {
        r.digests_.push_back(c.str());
    }
    // Checksummed is not trusted: every name and path is checked as a
    // request's would be, so a crafted file cannot reach the layout's asserts.
    n = c.count(28);
    for (std::uint32_t i = 0; i < n && !c.bad; ++i) {
        r.walk_.push_back(c.stamp());
        c.bad = c.bad || !safe_path(r.walk_.back().path) ||
                !r.walk_.back().path.starts_with("repositories");
    }
    n = c.count(4);
    for (std::uint32_t i = 0; i < n && !c.bad; ++i) {
        r.uploads_.push_back(c.str());
        c.bad = c.bad || !valid_repo_name(r.uploads_.back());
    }
    std::unordered_set<std::string> names;
    n = c.count(24);
    r.repos_.reserve(n);
    for (std::uint32_t i = 0; i < n && !c.bad; ++i) {
        RepoHead head;
        head.name = c.str();
        c.bad = c.bad || !valid_repo_name(head.name) || !names.insert(head.name).second;
        std::uint32_t nd = c.count(28);
        for (std::uint32_t j = 0; j < nd && !c.bad; ++j) {
            head.dirs.push_back(c.stamp());
            c.bad = c.bad || !safe_path(head.dirs.back().path) ||
                    !head.dirs.back().path.starts_with("_");
        }
        head.layers = c.ids(r.digests_.size());
        head.manifests = c.ids(r.digests_.size());
        auto tags_len = c.get<std::uint64_t>();
        head.tags_at = c.at;
        if (c.bad || tags_len > payload.size() - c.at) {
            c.bad = true;
            break;
        }
        // Check the tags part's structure now, so tags() cannot fail later.
        Cursor t{payload.substr(0, c.at + tags_len), c.at};
        std::uint32_t nt = t.count(8);
        for (std::uint32_t j = 0; j < nt && !t.bad; ++j) {
            std::string_view tag = t.view(); // checked here, copied only by tags()
            t.bad = t.bad || !valid_tag(tag) || t.get<std::uint32_t>() >= r.digests_.size();
        }
        if (t.bad || t.at != c.at + tags_len) {
            c.bad = true;
            break;
        }
        c.at += tags_len;
        r.repos_.push_back(std::move(head));
    }
    if (c.bad || c.at != payload.size()) {
        return corrupt("malformed");
    }
    return r;
}

Result<std::vector<std::pair<std::string, std::uint32_t>>>
SnapshotReader::tags(const RepoHead& r) const {
    Cursor c{std::string_view(bytes_).substr(header_bytes), r.tags_at};
    std::uint32_t n = c.count(8);
    std::vector<std::pair<std::string, std::uint32_t>> out;
    out.reserve(n);
    for (std::uint32_t i = 0; i < n && !c.bad; ++i) {
        std::string tag = c.str();
        auto id = c.get<std::uint32_t>();
        c.bad = c.bad || id >= digests_.size();
        out.emplace_back(std::move(tag), id);
    }
    if (c.bad) {
        return corrupt("malformed tags");
    }
    return out;
}

} // namespace rp::storage
