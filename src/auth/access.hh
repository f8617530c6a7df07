// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.hh"

namespace rp::auth {

// What a request may do. pull, push and delete are per repository; the
// others are server-wide (a rule's repositories do not narrow them).
enum Action : unsigned {
    pull = 1u << 0,
    push = 1u << 1,
    del = 1u << 2,
    catalog = 1u << 3, // GET /v2/_catalog (it lists only what the caller may pull)
    admin = 1u << 4,   // the server's own API under /ringport/v1/
    metrics = 1u << 5, // GET /metrics
};
using Actions = unsigned;
inline constexpr Actions repository_actions = pull | push | del;
// "pull,push" -> the set; an unknown word is an error naming it.
util::Result<Actions> parse_actions(const std::vector<std::string>& words);
std::string action_names(Actions a); // "pull,push" (for logs and scopes)

// Who is asking: a signed-in user (htpasswd, a token's subject, a client
// certificate's name) or nobody.
struct Identity {
    std::string user; // empty: anonymous
    bool anonymous() const noexcept { return user.empty(); }
};

// One [[access]] rule: who (user names, "group:NAME", "*" for every
// signed-in user, "anonymous"), which repositories (patterns: `*` matches
// within one path component, `**` across components; "**" alone is every
// repository), and what.
struct Rule {
    std::vector<std::string> who;
    std::vector<std::string> repositories;
    Actions actions = 0;
};

struct AccessConfig {
    std::map<std::string, std::vector<std::string>> groups;
    std::vector<Rule> rules;
};

// The rules, evaluated: what is granted is the union of every rule that
// names the caller. With no rules at all, every signed-in user may pull,
// push, delete and list the catalog (Distribution's htpasswd behaviour),
// anonymous callers nothing, and admin and metrics no one.
class Access {
  public:
    explicit Access(AccessConfig cfg);
    Actions granted(const Identity& who, std::string_view repository) const;
    Actions granted_server(const Identity& who) const; // catalog, admin, metrics
    // Whether the caller may pull every repository (no filtering needed).
    bool pulls_everything(const Identity& who) const;
    // Whether some rule lets anonymous callers do anything at all.
    bool any_anonymous() const noexcept { return any_anonymous_; }

  private:
    bool names(const Rule& r, const Identity& who) const;

    AccessConfig cfg_;
    bool any_anonymous_ = false;
};

} // namespace rp::auth
