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

constexpr std::string_view magic = "RPINDEX3";
constexpr std::size_t header_bytes = 8 + 8 + 8;
constexpr std::size_t trailer_bytes = 8 + 8 + 4;

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

SnapshotWriter::SnapshotWriter() = default;

SnapshotWriter::SnapshotWriter(Sink sink) : sink_(std::move(sink)) {
    hash_ = XXH3_createState();
    if (hash_ == nullptr) {
        util::fatal("snapshot: XXH3_createState", ENOMEM);
    }
    (void)XXH3_64bits_reset(static_cast<XXH3_state_t*>(hash_));
    buf_.reserve(piece_bytes + (64u << 10));
}

SnapshotWriter::~SnapshotWriter() {
    if (hash_ != nullptr) {
        (void)XXH3_freeState(static_cast<XXH3_state_t*>(hash_));
    }
}

std::uint32_t SnapshotWriter::digest(const std::string& d) {
    auto [it, added] = numbers_.try_emplace(d, static_cast<std::uint32_t>(digests_.size()));
    if (added) {
        digests_.push_back(d);
    }
    return it->second;
}

void SnapshotWriter::walk_dir(const DirStamp& s) {
    RP_ASSERT(!started_);
    put_stamp(walk_, s);
    ++walk_n_;
}

void SnapshotWriter::uploads_repo(const std::string& name) {
    RP_ASSERT(!started_);
    uploads_.push_back(name);
}

std::uint64_t SnapshotWriter::at() const noexcept { return sent_ + buf_.size() - header_bytes; }

void SnapshotWriter::start() {
    started_ = true;
    buf_.append(header_bytes, '\0'); // the header, once the payload is known
    put(buf_, walk_n_);
    buf_.append(walk_);
    std::string().swap(walk_);
    put<std::uint32_t>(buf_, static_cast<std::uint32_t>(uploads_.size()));
    for (const std::string& u : uploads_) {
        put_str(buf_, u);
    }
    std::vector<std::string>().swap(uploads_);
    repos_at_ = at();
}

void SnapshotWriter::flush() {
    if (!sink_ || failed_ || buf_.empty()) {
        return;
    }
    std::string_view all = buf_;
    std::size_t skip = sent_ == 0 ? header_bytes : 0; // the placeholder is not payload
    (void)XXH3_64bits_update(static_cast<XXH3_state_t*>(hash_), all.data() + skip,
                             all.size() - skip);
    failed_ = !sink_(all);
    sent_ += all.size();
    buf_.clear();
}

void SnapshotWriter::repo(const SnapshotRepo& r) {
    if (!started_) {
        start();
    }
    put_str(buf_, r.name);
    put<std::uint32_t>(buf_, static_cast<std::uint32_t>(r.dirs.size()));
    for (const DirStamp& d : r.dirs) {
        put_stamp(buf_, d);
    }
    put_ids(buf_, r.layers);
    put_ids(buf_, r.manifests);
    // The tags part's length, then the part, written in place.
    std::size_t len_at = buf_.size();
    put<std::uint64_t>(buf_, 0);
    std::size_t part = buf_.size();
    put<std::uint32_t>(buf_, static_cast<std::uint32_t>(r.tags.size()));
    for (const auto& [tag, id] : r.tags) {
        put_str(buf_, tag);
        put(buf_, id);
    }
    auto len = static_cast<std::uint64_t>(buf_.size() - part);
    std::memcpy(buf_.data() + len_at, &len, sizeof len);
    ++repos_n_;
    if (sink_ && buf_.size() >= piece_bytes) {
        flush();
    }
}

std::string SnapshotWriter::finish() {
    if (!started_) {
        start();
    }
    std::uint64_t digests_at = at();
    put<std::uint32_t>(buf_, static_cast<std::uint32_t>(digests_.size()));
    for (const std::string& d : digests_) {
        put_str(buf_, d);
    }
    std::vector<std::string>().swap(digests_);
    std::unordered_map<std::string, std::uint32_t>().swap(numbers_);
    put(buf_, repos_at_);
    put(buf_, digests_at);
    put(buf_, repos_n_);
    std::uint64_t len = at();
    std::uint64_t sum = 0;
    if (sink_) {
        flush();
        if (failed_) {
            return {};
        }
        sum = XXH3_64bits_digest(static_cast<XXH3_state_t*>(hash_));
    } else {
        sum = XXH3_64bits(buf_.data() + header_bytes, buf_.size() - header_bytes);
    }
    std::string header(magic);
    put(header, len);
    put(header, sum);
    RP_ASSERT(header.size() == header_bytes);
    if (sink_) {
        return header;
    }
    std::memcpy(buf_.data(), header.data(), header.size());
    return std::move(buf_);
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
    if (payload.size() < trailer_bytes) {
        return corrupt("malformed");
    }
    std::size_t end = payload.size() - trailer_bytes;
    Cursor tr{payload, end};
    auto repos_at = tr.get<std::uint64_t>();
    auto digests_at = tr.get<std::uint64_t>();
    auto repos_n = tr.get<std::uint32_t>();
    if (tr.bad || repos_at > digests_at || digests_at > end) {
        return corrupt("malformed");
    }
    // The digests first: every number in the rest is checked against them.
    Cursor d{payload.substr(0, end), digests_at};
    std::uint32_t n = d.count(4);
    r.digests_.reserve(n);
    for (std::uint32_t i = 0; i < n && !d.bad; ++i) {
        r.digests_.push_back(d.str());
    }
    if (d.bad || d.at != end) {
        return corrupt("malformed");
    }
    // Checksummed is not trusted: every name and path is checked as a
    // request's would be, so a crafted file cannot reach the layout's asserts.
    Cursor c{payload.substr(0, repos_at)};
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
    if (c.bad || c.at != repos_at) {
        return corrupt("malformed");
    }
    c = Cursor{payload.substr(0, digests_at), repos_at};
    if (repos_n > (digests_at - repos_at) / 24) {
        return corrupt("malformed");
    }
    std::unordered_set<std::string> names;
    r.repos_.reserve(repos_n);
    for (std::uint32_t i = 0; i < repos_n && !c.bad; ++i) {
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
        if (c.bad || tags_len > digests_at - c.at) {
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
    if (c.bad || c.at != digests_at) {
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
