// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where an upstream's credentials may go (issue 10, "the Docker token
// dance"): only to a token realm on the upstream's own registrable domain
// (auth.docker.io for registry-1.docker.io), to the same address for an
// IP-address upstream, or to a host on the upstream's allow-list. The
// registrable domain comes from the Public Suffix List, so "evil.co.uk" is
// never taken for a sibling of "registry.co.uk".

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "util/result.hh"

namespace rp::mirror {

// Debian's `publicsuffix` package.
inline constexpr const char* public_suffix_list_path =
    "/usr/share/publicsuffix/public_suffix_list.dat";

class PublicSuffixes {
  public:
    // The list's text format: a rule per line, `//` comments, `*.` wildcards
    // and `!` exceptions. Pure.
    static PublicSuffixes parse(std::string_view text);
    // Reads and parses the file (a blocking read: at start).
    static util::Result<PublicSuffixes> load(const std::string& path);

    // "auth.docker.io" -> "docker.io"; empty for a public suffix itself
    // ("co.uk") and for anything that is not a host name.
    std::string registrable_domain(std::string_view host) const;
    std::size_t size() const noexcept { return rules_.size() + wildcards_.size(); }

  private:
    std::unordered_set<std::string> rules_;      // "co.uk"
    std::unordered_set<std::string> wildcards_;  // "ck" for "*.ck"
    std::unordered_set<std::string> exceptions_; // "www.ck" for "!www.ck"
};

// The host of an absolute http(s) URL, lowercased, without port or
// brackets; empty when the URL has none. Pure.
std::string url_host(std::string_view url);
bool is_ip_address(std::string_view host);

// Whether credentials for the upstream at `upstream_url` may be sent to the
// token realm `realm_url`. `psl` null: only the upstream's own host and the
// allow-list qualify. Never over plain http when the upstream is https.
bool credentials_allowed(std::string_view upstream_url, std::string_view realm_url,
                         const std::vector<std::string>& allowed_hosts, const PublicSuffixes* psl);

} // namespace rp::mirror
