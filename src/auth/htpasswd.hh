// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.hh"

namespace rp::auth {

// An htpasswd file of bcrypt hashes, as Distribution accepts it: one
// `user:hash` per line; blank lines and lines starting with '#' are
// skipped. Any other hash scheme (MD5 "$apr1$", "{SHA}", crypt, plain) is
// an error that names the line, so a file that would let someone in with a
// weak hash never loads.
struct HtpasswdUsers {
    std::map<std::string, std::string, std::less<>> hashes;
    int max_cost = 4; // the highest bcrypt cost in the file
};
// Costs above this are refused: each login would take many seconds of CPU.
inline constexpr int htpasswd_cost_max = 18;
util::Result<HtpasswdUsers> parse_htpasswd(std::string_view text, const std::string& path);

// The file as the server sees it: loaded at startup (an error stops it),
// then read again when it changes, checked with a stat at most once a
// second. A changed file that fails to parse is logged and the previous
// users stay. Thread-safe.
class HtpasswdFile {
  public:
    static util::Result<std::unique_ptr<HtpasswdFile>> open(std::string path);
    // The user's current hash (after a reload when the file changed).
    std::optional<std::string> hash_of(std::string_view user);
    std::uint64_t reloads() const;
    int max_cost() const;
    const std::string& path() const noexcept { return path_; }

  private:
    explicit HtpasswdFile(std::string path) : path_(std::move(path)) {}
    void maybe_reload();

    std::string path_;
    mutable std::mutex mu_;
    std::shared_ptr<const HtpasswdUsers> users_;
    std::int64_t checked_s_ = 0;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    off_t size_ = 0;
    std::int64_t mtime_ns_ = 0;
    std::uint64_t reloads_ = 0;
};

// Adds or replaces `user`'s line in the file at `path` (created 0600 when
// absent), keeping every other line; written to a temporary file and
// renamed over, so a reader never sees half a file.
util::Result<void> htpasswd_set(const std::string& path, const std::string& user,
                                const std::string& hash);

} // namespace rp::auth
