// SPDX-License-Identifier: Apache-2.0
#include "auth/access.hh"

#include <algorithm>
#include <vector>

#include "util/strings.hh"

namespace rp::auth {

using util::Errc;
using util::Error;
using util::Result;

namespace {

struct Named {
    const char* name;
    Action action;
};
constexpr Named action_table[] = {{"pull", pull},       {"push", push},   {"delete", del},
                                  {"catalog", catalog}, {"admin", admin}, {"metrics", metrics}};

} // namespace

Result<Actions> parse_actions(const std::vector<std::string>& words) {
    Actions out = 0;
    for (const std::string& w : words) {
        if (w == "*") {
            out |= pull | push | del | catalog | admin | metrics;
            continue;
        }
        auto it = std::find_if(std::begin(action_table), std::end(action_table),
                               [&](const Named& n) { return w == n.name; });
        if (it == std::end(action_table)) {
            return Error::of(Errc::invalid,
                             "unknown action '" + w +
                                 "' (expected pull, push, delete, catalog, admin, metrics or *)");
        }
        out |= it->action;
    }
    return out;
}

std::string action_names(Actions a) {
    std::string out;
    for (const Named& n : action_table) {
        if ((a & n.action) != 0) {
            out.append(out.empty() ? "" : ",").append(n.name);
        }
    }
    return out;
}

Access::Access(AccessConfig cfg) : cfg_(std::move(cfg)) {
    for (const Rule& r : cfg_.rules) {
        if (std::find(r.who.begin(), r.who.end(), "anonymous") != r.who.end()) {
            any_anonymous_ = true;
        }
    }
}

bool Access::names(const Rule& r, const Identity& who) const {
    for (const std::string& w : r.who) {
        if (w == "anonymous") {
            if (who.anonymous()) {
                return true;
            }
            continue;
        }
        if (who.anonymous()) {
            continue;
        }
        if (w.rfind("group:", 0) == 0) {
            // Only ever a group: a user (or certificate, or token subject)
            // literally named "group:x" is not its members.
            auto g = cfg_.groups.find(w.substr(6));
            if (g != cfg_.groups.end() &&
                std::find(g->second.begin(), g->second.end(), who.user) != g->second.end()) {
                return true;
            }
            continue;
        }
        if (w == "*" || w == who.user) {
            return true;
        }
    }
    return false;
}

Actions Access::granted(const Identity& who, std::string_view repository) const {
    if (cfg_.rules.empty()) {
        return who.anonymous() ? 0 : (pull | push | del);
    }
    Actions out = 0;
    for (const Rule& r : cfg_.rules) {
        if ((r.actions & repository_actions) == 0 || !names(r, who)) {
            continue;
        }
        for (const std::string& p : r.repositories) {
            if (util::name_match(p, repository)) {
                out |= r.actions & repository_actions;
                break;
            }
        }
    }
    return out;
}

Actions Access::granted_server(const Identity& who) const {
    if (cfg_.rules.empty()) {
        return who.anonymous() ? 0 : catalog;
    }
    Actions out = 0;
    for (const Rule& r : cfg_.rules) {
        if (names(r, who)) {
            out |= r.actions & (catalog | admin | metrics);
        }
    }
    return out;
}

bool Access::pulls_everything(const Identity& who) const {
    if (cfg_.rules.empty()) {
        return !who.anonymous();
    }
    for (const Rule& r : cfg_.rules) {
        if ((r.actions & pull) != 0 && names(r, who) &&
            std::find(r.repositories.begin(), r.repositories.end(), "**") != r.repositories.end()) {
            return true;
        }
    }
    return false;
}

} // namespace rp::auth
