// SPDX-License-Identifier: Apache-2.0
#include "mirror/router.hh"

#include <algorithm>
#include <set>

#include "storage/names.hh"

namespace rp::mirror {

using util::Errc;
using util::Error;
using util::Result;

namespace {

bool under(std::string_view name, std::string_view prefix) noexcept {
    return name.size() > prefix.size() + 1 && name.starts_with(prefix) &&
           name[prefix.size()] == '/';
}

bool uses_library(const Upstream& u) {
    if (u.implicit_library) {
        return *u.implicit_library;
    }
    return u.prefix == "docker.io" ||
           std::find(u.hosts.begin(), u.hosts.end(), "docker.io") != u.hosts.end();
}

bool valid_host(std::string_view h) {
    if (h.empty() || h.size() > 253) {
        return false;
    }
    return std::all_of(h.begin(), h.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == ':' || c == '[' || c == ']';
    });
}

} // namespace

Result<void> validate(const std::vector<Upstream>& ups) {
    std::set<std::string> hosts;
    const Upstream* def = nullptr;
    for (const Upstream& u : ups) {
        const std::string where = "mirror '" + u.prefix + "'";
        if (!storage::valid_repo_name(u.prefix)) {
            return Error::of(Errc::invalid,
                             where + ": prefix must be a valid repository name (lowercase "
                                     "letters, digits, separators . _ - and /)");
        }
        if (!u.url.starts_with("http://") && !u.url.starts_with("https://")) {
            return Error::of(Errc::invalid,
                             where + ": url '" + u.url + "' must start with http:// or https://");
        }
        if (u.url.size() <= u.url.find("//") + 2) {
            return Error::of(Errc::invalid, where + ": url '" + u.url + "' names no host");
        }
        for (const Upstream& o : ups) {
            if (&o != &u && (o.prefix == u.prefix || under(o.prefix, u.prefix))) {
                return Error::of(Errc::invalid, where + ": prefix '" + o.prefix +
                                                    "' of another mirror overlaps it");
            }
        }
        std::set<std::string> own{u.prefix};
        own.insert(u.hosts.begin(), u.hosts.end());
        for (const std::string& h : own) {
            if (!valid_host(h)) {
                return Error::of(Errc::invalid, std::string(where)
                                                    .append(": host '")
                                                    .append(h)
                                                    .append("' is not a lowercase host name"));
            }
            if (!hosts.insert(h).second) {
                return Error::of(Errc::invalid, std::string(where)
                                                    .append(": host '")
                                                    .append(h)
                                                    .append("' is routed to another mirror too"));
            }
        }
        if (u.is_default) {
            if (def != nullptr) {
                return Error::of(Errc::invalid,
                                 where + ": mirror '" + def->prefix + "' is the default already");
            }
            def = &u;
        }
    }
    return util::Ok{};
}

Router::Router(std::vector<Upstream> ups) : ups_(std::move(ups)) {
    for (std::size_t i = 0; i < ups_.size(); ++i) {
        ups_[i].id = static_cast<unsigned>(i);
    }
    for (const Upstream& u : ups_) {
        if (u.is_default) {
            default_ = &u;
        }
    }
}

Route Router::mirrored(const Upstream& u, std::string_view upstream_name) const {
    Route r;
    r.kind = Route::Kind::mirrored;
    r.upstream = &u;
    if (uses_library(u) && upstream_name.find('/') == std::string_view::npos) {
        r.upstream_name = "library/";
    }
    r.upstream_name.append(upstream_name);
    r.local_name = u.prefix + "/" + r.upstream_name;
    return r;
}

const Upstream* Router::owner(std::string_view name) const noexcept {
    for (const Upstream& u : ups_) {
        if (under(name, u.prefix)) {
            return &u;
        }
    }
    return nullptr;
}

Route Router::route(std::string_view name, std::optional<std::string_view> ns,
                    const std::function<bool(std::string_view)>& hosted_exists) const {
    if (const Upstream* u = owner(name)) {
        return mirrored(*u, name.substr(u->prefix.size() + 1));
    }
    if (ns) {
        // Looked up in the configuration, never used as a host to connect to.
        for (const Upstream& u : ups_) {
            if (u.prefix == *ns ||
                std::find(u.hosts.begin(), u.hosts.end(), *ns) != u.hosts.end()) {
                return mirrored(u, name);
            }
        }
        Route r;
        r.kind = Route::Kind::unknown_ns;
        return r;
    }
    if (default_ != nullptr && !(hosted_exists && hosted_exists(name))) {
        return mirrored(*default_, name);
    }
    return Route{};
}

} // namespace rp::mirror
