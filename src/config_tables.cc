// SPDX-License-Identifier: Apache-2.0
#include "config_tables.hh"

#include <cmath>
#include <optional>
#include <vector>

#include "util/strings.hh"

namespace rp::config_tables {

using util::Errc;
using util::Error;
using util::Result;

namespace {

// "<where>.<key>: expected <what>": a table's key with a value of the wrong kind.
Error expected(std::string_view where, std::string_view key, std::string_view what) {
    return Error::of(Errc::invalid,
                     std::string(where).append(".").append(key).append(": expected ").append(what));
}

// An array of strings at `key` of `t`, or an error naming `where`.
Result<std::vector<std::string>> strings_at(const toml::table& t, const char* key,
                                            const std::string& where) {
    std::vector<std::string> out;
    const toml::node* n = t.get(key);
    if (n == nullptr) {
        return out;
    }
    const toml::array* a = n->as_array();
    if (a == nullptr) {
        return expected(where, key, "an array of strings");
    }
    for (const auto& v : *a) {
        if (!v.is_string()) {
            return expected(where, key, "an array of strings");
        }
        out.push_back(v.as_string()->get());
    }
    return out;
}

// A Go duration ("500ms", "2s", "1m30s", "1.5h") in milliseconds, as
// Distribution's notification settings write them.
std::optional<std::uint64_t> go_duration_ms(std::string_view s) {
    if (s.empty()) {
        return std::nullopt;
    }
    double total_ms = 0;
    while (!s.empty()) {
        std::size_t i = 0;
        while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) {
            ++i;
        }
        if (i == 0) {
            return std::nullopt;
        }
        double v = 0;
        try {
            v = std::stod(std::string(s.substr(0, i)));
        } catch (const std::exception&) {
            return std::nullopt;
        }
        s.remove_prefix(i);
        std::size_t u = 0;
        while (u < s.size() && !((s[u] >= '0' && s[u] <= '9') || s[u] == '.')) {
            ++u;
        }
        const std::string_view unit = s.substr(0, u);
        s.remove_prefix(u);
        const double scale = unit == "ns"                   ? 1e-6
                             : unit == "us" || unit == "µs" ? 1e-3
                             : unit == "ms"                 ? 1
                             : unit == "s"                  ? 1e3
                             : unit == "m"                  ? 60e3
                             : unit == "h"                  ? 3600e3
                                                            : -1;
        if (scale < 0) {
            return std::nullopt;
        }
        total_ms += v * scale;
    }
    if (total_ms > 1e12) {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(std::llround(total_ms));
}

// One [[notifications.endpoints]] table, with Distribution's key names.
Result<observe::Endpoint> parse_endpoint(const toml::table& t, const std::string& where) {
    observe::Endpoint ep;
    bool have_timeout = false;
    for (auto&& [name, value] : t) {
        const std::string key(name.str());
        auto bad = [&](const char* what) { return expected(where, key, what); };
        if (key == "name" || key == "url") {
            const auto* v = value.as_string();
            if (v == nullptr || v->get().empty()) {
                return bad("a string");
            }
            (key == "name" ? ep.name : ep.url) = v->get();
        } else if (key == "disabled") {
            const auto* v = value.as_boolean();
            if (v == nullptr) {
                return bad("true or false");
            }
            ep.disabled = v->get();
        } else if (key == "timeout" || key == "backoff") {
            const auto* v = value.as_string();
            auto ms = v != nullptr ? go_duration_ms(v->get()) : std::nullopt;
            if (!ms || *ms > 3600000 || (key == "timeout" && *ms == 0)) {
                return bad("a duration such as \"500ms\" or \"2s\" (at most 1h)");
            }
            (key == "timeout" ? ep.timeout_ms : ep.backoff_ms) = static_cast<std::uint32_t>(*ms);
            have_timeout = have_timeout || key == "timeout";
        } else if (key == "threshold" || key == "batch_events") {
            const auto* v = value.as_integer();
            const std::int64_t lo = key == "threshold" ? 0 : 1;
            if (v == nullptr || v->get() < lo || v->get() > 1000) {
                return bad(key == "threshold" ? "a number from 0 to 1000"
                                              : "a number from 1 to 1000");
            }
            (key == "threshold" ? ep.threshold : ep.batch_events) =
                static_cast<std::uint32_t>(v->get());
        } else if (key == "max_age_s") {
            const auto* v = value.as_integer();
            if (v == nullptr || v->get() < 1 || v->get() > 31536000) {
                return bad("seconds from 1 to 31536000");
            }
            ep.max_age_s = static_cast<std::uint64_t>(v->get());
        } else if (key == "headers") {
            const auto* h = value.as_table();
            if (h == nullptr) {
                return bad("a table of header names to arrays of values");
            }
            for (auto&& [hname, hv] : *h) {
                const std::string n(hname.str());
                if (n.empty() || n.find_first_of(":\r\n ") != std::string::npos) {
                    return bad("header names without ':' or spaces");
                }
                std::vector<std::string> values;
                if (const auto* one = hv.as_string()) {
                    values.push_back(one->get());
                } else if (const auto* arr = hv.as_array()) {
                    for (const auto& x : *arr) {
                        if (!x.is_string()) {
                            return bad("a table of header names to arrays of values");
                        }
                        values.push_back(x.as_string()->get());
                    }
                } else {
                    return bad("a table of header names to arrays of values");
                }
                for (const std::string& v : values) {
                    if (v.find_first_of("\r\n") != std::string::npos) {
                        return bad("header values without line breaks");
                    }
                    ep.headers.push_back(std::string(n).append(": ").append(v));
                }
            }
        } else if (key == "ignoredmediatypes") {
            auto m = strings_at(t, "ignoredmediatypes", where);
            if (!m) {
                return std::move(m).error();
            }
            ep.ignored_media_types.insert(ep.ignored_media_types.end(), m->begin(), m->end());
        } else if (key == "ignore") {
            const auto* ig = value.as_table();
            if (ig == nullptr) {
                return bad("a table with mediatypes and actions");
            }
            for (auto&& [iname, iv] : *ig) {
                (void)iv;
                if (iname.str() != "mediatypes" && iname.str() != "actions") {
                    return Error::of(Errc::invalid, "config file: unknown key '" + where +
                                                        ".ignore." + std::string(iname.str()) +
                                                        "' (expected mediatypes, actions)");
                }
            }
            auto m = strings_at(*ig, "mediatypes", where + ".ignore");
            auto a = strings_at(*ig, "actions", where + ".ignore");
            if (!m || !a) {
                return !m ? std::move(m).error() : std::move(a).error();
            }
            ep.ignored_media_types.insert(ep.ignored_media_types.end(), m->begin(), m->end());
            for (const std::string& x : *a) {
                if (x != "push" && x != "pull" && x != "mount" && x != "delete") {
                    return Error::of(Errc::invalid,
                                     std::string(where)
                                         .append(".ignore.actions: '")
                                         .append(x)
                                         .append("' (expected push, pull, mount, delete)"));
                }
            }
            ep.ignored_actions = std::move(*a);
        } else {
            return Error::of(Errc::invalid,
                             std::string("config file: unknown key '")
                                 .append(where)
                                 .append(".")
                                 .append(key)
                                 .append("' (expected name, url, headers, timeout, threshold, "
                                         "backoff, ignoredmediatypes, ignore, disabled, "
                                         "batch_events, max_age_s)"));
        }
    }
    (void)have_timeout;
    if (ep.name.empty() || ep.url.empty()) {
        return Error::of(Errc::invalid, where + ": name and url are required");
    }
    if (ep.url.rfind("http://", 0) != 0 && ep.url.rfind("https://", 0) != 0) {
        return Error::of(Errc::invalid, where + ".url: expected an http:// or https:// URL");
    }
    return ep;
}

// One [[access]] table: who, repositories, actions.
Result<auth::Rule> parse_rule(const toml::table& t, const std::string& where) {
    for (auto&& [name, value] : t) {
        (void)value;
        std::string_view k = name.str();
        if (k != "who" && k != "repositories" && k != "actions") {
            return Error::of(Errc::invalid, std::string("config file: unknown key '")
                                                .append(where)
                                                .append(".")
                                                .append(k)
                                                .append("' (expected who, repositories, actions)"));
        }
    }
    auth::Rule r;
    auto who = strings_at(t, "who", where);
    auto repos = strings_at(t, "repositories", where);
    auto actions = strings_at(t, "actions", where);
    if (!who || !repos || !actions) {
        return !who ? std::move(who).error()
                    : (!repos ? std::move(repos).error() : std::move(actions).error());
    }
    auto a = auth::parse_actions(*actions);
    if (!a) {
        return Error::of(Errc::invalid, where + ".actions: " + a.error().detail);
    }
    if (who->empty() || *a == 0) {
        return Error::of(Errc::invalid, where + ": who and actions must not be empty");
    }
    if ((*a & auth::repository_actions) != 0 && repos->empty()) {
        return Error::of(Errc::invalid,
                         where + ": pull, push and delete need repositories (\"**\" for all)");
    }
    r.who = std::move(*who);
    r.repositories = std::move(*repos);
    r.actions = *a;
    return r;
}

} // namespace

Result<mirror::Upstream> parse_mirror(const toml::table& t, const std::string& where) {
    mirror::Upstream u;
    for (auto&& [name, value] : t) {
        const std::string key(name.str());
        auto bad = [&](const char* what) { return expected(where, key, what); };
        if (key == "prefix" || key == "url") {
            const auto* v = value.as_string();
            if (v == nullptr) {
                return bad("a string");
            }
            (key == "prefix" ? u.prefix : u.url) = v->get();
        } else if (key == "username" || key == "password" || key == "credentials_file" ||
                   key == "ca_file") {
            const auto* v = value.as_string();
            if (v == nullptr) {
                return bad("a string");
            }
            (key == "username"           ? u.username
             : key == "password"         ? u.password
             : key == "credentials_file" ? u.credentials_file
                                         : u.ca_file) = v->get();
        } else if (key == "tls_verify") {
            const auto* v = value.as_boolean();
            if (v == nullptr) {
                return bad("true or false");
            }
            u.tls_verify = v->get();
        } else if (key == "connect_timeout_ms" || key == "first_byte_timeout_ms" ||
                   key == "stall_timeout_ms") {
            const auto* v = value.as_integer();
            if (v == nullptr || v->get() < 1 || v->get() > 3600000) {
                return bad("milliseconds from 1 to 3600000");
            }
            (key == "connect_timeout_ms"      ? u.connect_timeout_ms
             : key == "first_byte_timeout_ms" ? u.first_byte_timeout_ms
                                              : u.stall_timeout_ms) =
                static_cast<std::uint32_t>(v->get());
        } else if (key == "cache_bytes_max") {
            const auto* v = value.as_integer();
            if (v == nullptr || v->get() < 0) {
                return bad("a byte count (0: no limit)");
            }
            u.cache_bytes_max = static_cast<std::uint64_t>(v->get());
        } else if (key == "evict_high_percent" || key == "evict_low_percent") {
            const auto* v = value.as_integer();
            if (v == nullptr || v->get() < 1 || v->get() > 100) {
                return bad("a percentage from 1 to 100");
            }
            (key == "evict_high_percent" ? u.evict_high_percent : u.evict_low_percent) =
                static_cast<std::uint64_t>(v->get());
        } else if (key == "prewarm_interval_s") {
            const auto* v = value.as_integer();
            if (v == nullptr || v->get() < 0 || v->get() > 31536000) {
                return bad("seconds from 0 to 31536000");
            }
            u.prewarm_interval_s = static_cast<std::uint64_t>(v->get());
        } else if (key == "hosts" || key == "auth_hosts" || key == "pins" || key == "prewarm") {
            const auto* a = value.as_array();
            if (a == nullptr) {
                return bad("an array of strings");
            }
            for (const auto& h : *a) {
                if (!h.is_string()) {
                    return bad("an array of strings");
                }
                (key == "hosts"        ? u.hosts
                 : key == "auth_hosts" ? u.auth_hosts
                 : key == "pins"       ? u.pins
                                       : u.prewarm)
                    .push_back(h.as_string()->get());
            }
        } else if (key == "default" || key == "implicit_library") {
            const auto* v = value.as_boolean();
            if (v == nullptr) {
                return bad("true or false");
            }
            if (key == "default") {
                u.is_default = v->get();
            } else {
                u.implicit_library = v->get();
            }
        } else if (key == "tag_ttl_s" || key == "not_found_ttl_s" || key == "retry_after_s" ||
                   key == "deadline_ms" || key == "max_stale_s" || key == "ratelimit_min" ||
                   key == "list_ttl_s") {
            const auto* v = value.as_integer();
            const bool ms = key == "deadline_ms";
            if (v == nullptr || v->get() < (ms ? 1 : 0) || v->get() > 31536000) {
                return bad(ms                       ? "milliseconds from 1 to 31536000"
                           : key == "ratelimit_min" ? "a count from 0 to 31536000"
                                                    : "seconds from 0 to 31536000");
            }
            std::uint64_t& field = key == "tag_ttl_s"         ? u.tag_ttl_s
                                   : key == "not_found_ttl_s" ? u.not_found_ttl_s
                                   : key == "retry_after_s"   ? u.retry_after_s
                                   : key == "max_stale_s"     ? u.max_stale_s
                                   : key == "ratelimit_min"   ? u.ratelimit_min
                                   : key == "list_ttl_s"      ? u.list_ttl_s
                                                              : u.deadline_ms;
            field = static_cast<std::uint64_t>(v->get());
        } else {
            return Error::of(Errc::invalid, std::string("config file: unknown key '")
                                                .append(where)
                                                .append(".")
                                                .append(key)
                                                .append("'"));
        }
    }
    if (u.prefix.empty() || u.url.empty()) {
        return Error::of(Errc::invalid, where + ": prefix and url are required");
    }
    if (!u.credentials_file.empty() && (!u.username.empty() || !u.password.empty())) {
        return Error::of(Errc::invalid,
                         where + ": credentials_file or username/password, not both");
    }
    if (u.evict_low_percent >= u.evict_high_percent) {
        return Error::of(Errc::invalid,
                         where + ": evict_low_percent must be below evict_high_percent");
    }
    for (const std::string& r : u.prewarm) {
        if (r.find_first_of(":@") == std::string::npos || r.front() == ':' || r.front() == '@') {
            std::string msg = where;
            msg.append(".prewarm: '")
                .append(r)
                .append("' is not <repository>:<tag> or <repository>@<digest>");
            return Error::of(Errc::invalid, std::move(msg));
        }
    }
    if (u.username.empty() != u.password.empty()) {
        return Error::of(Errc::invalid, where + ": username and password go together");
    }
    return u;
}

Result<bool> apply_notifications(Config& cfg, std::string_view key, const toml::node& value) {
    if (key == "endpoints") {
        const toml::array* a = value.as_array();
        if (a == nullptr || !a->is_array_of_tables()) {
            return Error::of(Errc::invalid, "'notifications.endpoints' must be an array of "
                                            "tables ([[notifications.endpoints]])");
        }
        for (std::size_t i = 0; i < a->size(); ++i) {
            auto ep = parse_endpoint(*a->get(i)->as_table(),
                                     "notifications.endpoints[" + std::to_string(i) + "]");
            if (!ep) {
                return std::move(ep).error();
            }
            for (const observe::Endpoint& other : cfg.notification_endpoints) {
                if (other.name == ep->name) {
                    return Error::of(Errc::invalid, "notifications.endpoints: the name '" +
                                                        ep->name + "' is used twice");
                }
            }
            cfg.notification_endpoints.push_back(std::move(*ep));
        }
        return true;
    }
    if (key == "events") {
        const toml::table* t = value.as_table();
        if (t == nullptr) {
            return Error::of(Errc::invalid, "'notifications.events' must be a table");
        }
        for (auto&& [name, v] : *t) {
            if (name.str() != "includereferences" || !v.is_boolean()) {
                return Error::of(Errc::invalid,
                                 "notifications.events: expected only includereferences = "
                                 "true or false");
            }
            cfg.notifications_include_references = v.as_boolean()->get();
        }
        return true;
    }
    return false;
}

Result<storage::RetentionPolicy> parse_policy(const toml::table& t, const std::string& where) {
    storage::RetentionPolicy p;
    for (auto&& [name, value] : t) {
        std::string_view k = name.str();
        auto bad = [&](const char* what) { return expected(where, k, what); };
        if (k == "repositories" || k == "keep_tags") {
            continue; // below
        }
        const auto* v = value.as_integer();
        std::uint32_t* field = k == "keep_last"                ? &p.keep_last
                               : k == "delete_older_than_days" ? &p.older_than_days
                               : k == "delete_not_pulled_days" ? &p.not_pulled_days
                               : k == "delete_untagged_days"   ? &p.untagged_days
                                                               : nullptr;
        if (field == nullptr) {
            return Error::of(Errc::invalid, "config file: unknown key '" + where + "." +
                                                std::string(k) +
                                                "' (expected repositories, keep_last, keep_tags, "
                                                "delete_older_than_days, delete_not_pulled_days, "
                                                "delete_untagged_days)");
        }
        if (v == nullptr || v->get() < 1 || v->get() > 1000000) {
            return bad("a number from 1 to 1000000");
        }
        *field = static_cast<std::uint32_t>(v->get());
    }
    auto repos = strings_at(t, "repositories", where);
    if (!repos) {
        return std::move(repos).error();
    }
    auto keep = strings_at(t, "keep_tags", where);
    if (!keep) {
        return std::move(keep).error();
    }
    p.repositories = std::move(*repos);
    p.keep_tags = std::move(*keep);
    if (p.repositories.empty()) {
        return Error::of(Errc::invalid, where + ": repositories must name at least one pattern "
                                                "(\"**\" for all)");
    }
    if (!p.deletes_tags() && p.untagged_days == 0) {
        return Error::of(Errc::invalid,
                         where + ": deletes nothing (set keep_last, delete_older_than_days, "
                                 "delete_not_pulled_days or delete_untagged_days)");
    }
    return p;
}

Result<void> apply_access(Config& cfg, const std::string& path, std::string_view section,
                          const toml::node& node) {
    if (section == "groups") {
        const toml::table* t = node.as_table();
        if (t == nullptr) {
            return Error::of(Errc::invalid, "config file " + path + ": [groups] must be a table");
        }
        for (auto&& [name, members] : *t) {
            (void)members;
            auto m = strings_at(*t, std::string(name.str()).c_str(), "groups");
            if (!m) {
                return std::move(m).error();
            }
            cfg.access.groups[std::string(name.str())] = std::move(*m);
        }
        return util::Ok{};
    }
    const toml::array* a = node.as_array();
    if (a == nullptr || !a->is_array_of_tables()) {
        return Error::of(Errc::invalid, "config file " + path +
                                            ": 'access' must be an array of tables ([[access]])");
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
        auto r = parse_rule(*a->get(i)->as_table(), "access[" + std::to_string(i) + "]");
        if (!r) {
            return std::move(r).error();
        }
        cfg.access.rules.push_back(std::move(*r));
    }
    return util::Ok{};
}

} // namespace rp::config_tables
