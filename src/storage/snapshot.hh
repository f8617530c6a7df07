// SPDX-License-Identifier: Apache-2.0
#pragma once

// The index snapshot: what the index held at a clean shutdown, and the state
// of the directories whose change would reveal a write made while ringport
// was stopped. Only an encoding here; rebuild.cc decides when to trust it.
//
// File layout (little-endian; strings are u32 length + bytes):
//   "RPINDEX3" | u64 payload length | u64 XXH3-64 of the payload | payload
//   payload: u32 n, n DirStamps (the repositories/ walk: every directory
//                   that is not a repository's own `_` directory)
//            u32 n, n names of repositories with an _uploads directory
//            the repositories, one after another:
//              name | u32 n, n DirStamps (its _layers and _manifests dirs)
//              u32 n, n layer digest numbers | u32 n, n manifest numbers
//              u64 length of the tags part | u32 n, n (tag, digest number)
//            u32 n, n digest strings (numbered in order)
//            trailer: u64 offset of the first repository | u64 offset of
//                     the digests | u32 number of repositories
//   The digests come last so that a save can write the repositories out as
//   it encodes them (it numbers digests as it meets them): a save holds the
//   digest table and a piece of the file, never the whole file.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/result.hh"

namespace rp::storage {

// <root>/.ringport.index, beside the lock file.
constexpr std::string_view snapshot_file = ".ringport.index";

struct DirStamp {
    std::string path;      // relative to the v2 directory (walk) or to the repository
    std::uint64_t ino = 0; // 0: absent
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;
    bool same_state(const DirStamp& o) const noexcept {
        return ino == o.ino && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
    }
};
// The directory's state now (ino 0 if it is absent or not a directory).
DirStamp stamp_dir(int dirfd, std::string path);

struct SnapshotRepo {
    std::string name;
    std::vector<DirStamp> dirs;
    std::vector<std::uint32_t> layers;
    std::vector<std::uint32_t> manifests;
    std::vector<std::pair<std::string, std::uint32_t>> tags;
};

// Encodes a snapshot. walk_dir() and uploads_repo() come before the first
// repo(). In memory (no sink) finish() returns the whole file; with a sink
// the bytes leave in pieces of about `piece_bytes` as they are made, the
// first being a placeholder for the header, and finish() returns the
// header, which belongs at offset 0.
class SnapshotWriter {
  public:
    // Takes the next bytes of the file; false stops the writer.
    using Sink = std::function<bool(std::string_view)>;
    static constexpr std::size_t piece_bytes = 1u << 20;

    SnapshotWriter();
    explicit SnapshotWriter(Sink sink);
    ~SnapshotWriter();
    SnapshotWriter(const SnapshotWriter&) = delete;
    SnapshotWriter& operator=(const SnapshotWriter&) = delete;

    std::uint32_t digest(const std::string& d); // its number, added if new
    void walk_dir(const DirStamp& s);
    void uploads_repo(const std::string& name);
    void repo(const SnapshotRepo& r);
    // The whole file, or with a sink the header; empty if the sink refused
    // a piece. The writer is spent.
    std::string finish();

  private:
    void start();                      // the header placeholder, the walk and the uploads
    void flush();                      // with a sink: hands buf_ over
    std::uint64_t at() const noexcept; // the payload offset of the next byte

    Sink sink_;
    void* hash_ = nullptr; // XXH3_state_t, with a sink
    std::string buf_;      // bytes not yet handed over (all of them without a sink)
    std::uint64_t sent_ = 0;
    bool started_ = false;
    bool failed_ = false;
    std::vector<std::string> digests_;
    std::unordered_map<std::string, std::uint32_t> numbers_;
    std::string walk_;
    std::uint32_t walk_n_ = 0;
    std::vector<std::string> uploads_;
    std::uint64_t repos_at_ = 0;
    std::uint32_t repos_n_ = 0;
};

// Reads a snapshot in two passes: the headers of every repository (cheap),
// then one repository's tags at a time (the bulk), so a million tags are
// never all decoded at once.
class SnapshotReader {
  public:
    struct RepoHead {
        std::string name;
        std::vector<DirStamp> dirs;
        std::vector<std::uint32_t> layers;
        std::vector<std::uint32_t> manifests;
        std::size_t tags_at = 0; // offset of its tags part in the payload
    };
    static util::Result<SnapshotReader> open(std::string bytes);
    const std::vector<std::string>& digests() const noexcept { return digests_; }
    const std::vector<DirStamp>& walk() const noexcept { return walk_; }
    const std::vector<std::string>& uploads() const noexcept { return uploads_; }
    std::vector<RepoHead>& repos() noexcept { return repos_; }
    util::Result<std::vector<std::pair<std::string, std::uint32_t>>> tags(const RepoHead& r) const;

  private:
    std::string bytes_;
    std::vector<std::string> digests_;
    std::vector<DirStamp> walk_;
    std::vector<std::string> uploads_;
    std::vector<RepoHead> repos_;
};

} // namespace rp::storage
