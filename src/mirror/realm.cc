// SPDX-License-Identifier: Apache-2.0
#include "mirror/realm.hh"

#include <arpa/inet.h>

#include <fstream>
#include <sstream>

#include "util/strings.hh"

namespace rp::mirror {

using util::Errc;
using util::Error;

PublicSuffixes PublicSuffixes::parse(std::string_view text) {
    PublicSuffixes p;
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        // A rule is the line's first word; the rest, and comment lines, are ignored.
        line = util::trim(line);
        line = line.substr(0, line.find_first_of(" \t"));
        if (line.empty() || line.starts_with("//")) {
            continue;
        }
        std::string rule = util::to_lower(line);
        if (rule.starts_with("!")) {
            p.exceptions_.insert(rule.substr(1));
        } else if (rule.starts_with("*.")) {
            p.wildcards_.insert(rule.substr(2));
        } else {
            p.rules_.insert(std::move(rule));
        }
    }
    return p;
}

util::Result<PublicSuffixes> PublicSuffixes::load(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return Error::of(Errc::not_found, "cannot read the public suffix list " + path);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    PublicSuffixes p = parse(ss.str());
    if (p.size() == 0) {
        return Error::of(Errc::invalid, "the public suffix list " + path + " holds no rules");
    }
    return p;
}

bool is_ip_address(std::string_view host) {
    std::string h(host);
    unsigned char buf[16];
    return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

std::string PublicSuffixes::registrable_domain(std::string_view host) const {
    std::string h = util::to_lower(host);
    if (h.ends_with('.')) {
        h.pop_back();
    }
    if (h.empty() || is_ip_address(h) || h.find_first_of("/:@ ") != std::string::npos) {
        return {};
    }
    // The suffixes of h, longest first: "a.b.c", "b.c", "c".
    std::vector<std::size_t> starts{0};
    for (std::size_t i = 0; i < h.size(); ++i) {
        if (h[i] == '.') {
            if (i + 1 >= h.size() || i == 0 || h[i - 1] == '.') {
                return {}; // an empty label
            }
            starts.push_back(i + 1);
        }
    }
    // The longest matching rule wins; an exception rule names the suffix
    // one label shorter. No rule matches: the last label is the suffix ("*").
    std::size_t suffix = starts.back();
    for (std::size_t k = 0; k < starts.size(); ++k) {
        const std::string_view s = std::string_view(h).substr(starts[k]);
        if (exceptions_.contains(std::string(s))) {
            suffix = k + 1 < starts.size() ? starts[k + 1] : h.size();
            break;
        }
        const bool wild =
            k + 1 < starts.size() &&
            wildcards_.contains(std::string(std::string_view(h).substr(starts[k + 1])));
        if (rules_.contains(std::string(s)) || wild) {
            suffix = starts[k];
            break;
        }
    }
    // The registrable domain is the suffix and one label more.
    for (std::size_t k = 1; k < starts.size(); ++k) {
        if (starts[k] == suffix) {
            return h.substr(starts[k - 1]);
        }
    }
    return {}; // the host is itself a public suffix
}

std::string url_host(std::string_view url) {
    auto scheme = url.find("://");
    if (scheme == std::string_view::npos) {
        return {};
    }
    std::string_view rest = url.substr(scheme + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        rest.remove_prefix(at + 1);
    }
    if (rest.starts_with('[')) { // an IPv6 literal
        auto close = rest.find(']');
        return close == std::string_view::npos ? std::string()
                                               : util::to_lower(rest.substr(1, close - 1));
    }
    return util::to_lower(rest.substr(0, rest.find(':')));
}

bool credentials_allowed(std::string_view upstream_url, std::string_view realm_url,
                         const std::vector<std::string>& allowed_hosts, const PublicSuffixes* psl) {
    const std::string up = url_host(upstream_url);
    const std::string realm = url_host(realm_url);
    if (up.empty() || realm.empty()) {
        return false;
    }
    if (upstream_url.starts_with("https://") && !realm_url.starts_with("https://")) {
        return false; // never downgraded to plain text
    }
    if (realm == up) {
        return true;
    }
    for (const std::string& a : allowed_hosts) {
        if (util::to_lower(a) == realm) {
            return true;
        }
    }
    if (psl == nullptr || is_ip_address(up) || is_ip_address(realm)) {
        return false;
    }
    const std::string d = psl->registrable_domain(up);
    return !d.empty() && d == psl->registrable_domain(realm);
}

} // namespace rp::mirror
