// SPDX-License-Identifier: Apache-2.0
#pragma once

// Which upstream, if any, a request's repository belongs to (issue 10,
// "Routing"). Pure: the registry asks, the mirror fetches.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.hh"

namespace rp::mirror {

// One [[mirror]] table of the config file.
struct Upstream {
    std::string prefix;             // path prefix, and where the cache is stored ("docker.io")
    std::string url;                // "https://registry-1.docker.io"
    std::vector<std::string> hosts; // `ns` values routed here, besides the prefix itself
    bool is_default = false;        // requests with neither prefix nor ns
    // Docker Hub's "alpine" is "library/alpine". Unset: on when "docker.io"
    // is the prefix or one of the hosts.
    std::optional<bool> implicit_library;
    // A cached tag is served without asking upstream for this long; then a
    // HEAD revalidates it (a GET only when its digest changed).
    std::uint64_t tag_ttl_s = 60;
    // An upstream "not found" is remembered this long (0: never).
    std::uint64_t not_found_ttl_s = 30;
    // Revalidating a cached tag waits at most this long for the upstream;
    // then the cached copy is served (stale).
    std::uint64_t deadline_ms = 1000;
    // After the upstream failed (refused, timed out, 5xx, 429), cached tags
    // are served without asking it for this long (its Retry-After, when
    // longer); then the next request tries it again.
    std::uint64_t retry_after_s = 10;
    // A mirrored repository's tag list and referrers are the upstream's,
    // each query kept this long.
    std::uint64_t list_ttl_s = 30;
    // A cached tag is served stale (upstream down) only while it was
    // confirmed upstream within this long; older, the pull fails.
    std::uint64_t max_stale_s = 7 * 86400;
    // Below this many remaining pulls (Docker Hub's ratelimit-remaining),
    // cached tags are served without revalidation for retry_after_s.
    std::uint64_t ratelimit_min = 10;
    // Credentials for the upstream: sent as Basic auth when it asks for
    // Basic, and to its token realm when the realm qualifies (realm.hh).
    // Inline, or from `credentials_file` ("user:password" on its first
    // line), re-read when the file changes. At most one of the two.
    std::string username;
    std::string password;
    std::string credentials_file;
    // Token realm hosts trusted with the credentials besides the upstream's
    // own registrable domain.
    std::vector<std::string> auth_hosts;
    std::string ca_file; // PEM bundle the upstream's certificate must chain to; empty: the system's
    bool tls_verify = true;
    // Per upstream request: connecting; the response's status line; no byte
    // arriving at any point (a blob transfer then resumes).
    std::uint32_t connect_timeout_ms = 5000;
    std::uint32_t first_byte_timeout_ms = 30000;
    std::uint32_t stall_timeout_ms = 30000;
    // The cache's size limit (0: none): past evict_high_percent of it, the
    // least recently pulled manifests go until it is under evict_low_percent.
    std::uint64_t cache_bytes_max = 0;
    std::uint64_t evict_high_percent = 90;
    std::uint64_t evict_low_percent = 80;
    // Never evicted: globs over "<upstream repository>:<tag>" and
    // "<upstream repository>@<digest>" ("library/alpine:*").
    std::vector<std::string> pins;
    // Fetched at start and every prewarm_interval_s (0: at start only):
    // "<upstream repository>:<tag>" or "@<digest>", every platform.
    std::vector<std::string> prewarm;
    std::uint64_t prewarm_interval_s = 3600;
    unsigned id = 0; // its position among the mirrors (set by the Router)

    bool has_credentials() const noexcept { return !username.empty() || !credentials_file.empty(); }
};

// Every upstream is well formed and none overlaps another: prefixes are
// valid repository names, neither equal nor nested; hosts are unique across
// upstreams; at most one default. The error names the offending value.
util::Result<void> validate(const std::vector<Upstream>& ups);

struct Route {
    enum class Kind {
        hosted,     // ringport's own content
        mirrored,   // the cache of `upstream`, as `local_name`
        unknown_ns, // an `ns` that names no configured upstream: 404 NAME_UNKNOWN
    };
    Kind kind = Kind::hosted;
    const Upstream* upstream = nullptr;
    std::string local_name;    // the repository in the tree: "<prefix>/<upstream_name>"
    std::string upstream_name; // the repository upstream: "library/alpine"
};

class Router {
  public:
    Router() = default;
    explicit Router(std::vector<Upstream> ups); // validated beforehand
    // default_ points into ups_: a move keeps it valid, a copy would not.
    Router(const Router&) = delete;
    Router& operator=(const Router&) = delete;
    Router(Router&&) noexcept = default;
    Router& operator=(Router&&) noexcept = default;
    bool empty() const noexcept { return ups_.empty(); }
    const std::vector<Upstream>& upstreams() const noexcept { return ups_; }
    // The upstream taking requests with neither prefix nor ns, if any.
    const Upstream* default_upstream() const noexcept { return default_; }

    // `name` is the request path's repository, `ns` containerd's query
    // parameter if present. A path prefix wins over `ns` (containerd with
    // override_path sends both). With neither, a default upstream takes the
    // name unless `hosted_exists(name)`: a repository pushed here stays
    // served as hosted content.
    Route route(std::string_view name, std::optional<std::string_view> ns,
                const std::function<bool(std::string_view)>& hosted_exists) const;

    // Whether `name` (a repository in the tree) is under a mirrored prefix:
    // pushes there are refused.
    const Upstream* owner(std::string_view name) const noexcept;

  private:
    Route mirrored(const Upstream& u, std::string_view upstream_name) const;
    std::vector<Upstream> ups_;
    const Upstream* default_ = nullptr; // into ups_
};

} // namespace rp::mirror
