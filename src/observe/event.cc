// SPDX-License-Identifier: Apache-2.0
#include "observe/event.hh"

#include <chrono>
#include <cstdio>
#include <ctime>

#include "util/strings.hh"

namespace rp::observe {

std::string_view action_name(Action a) noexcept {
    switch (a) {
    case Action::push: return "push";
    case Action::pull: return "pull";
    case Action::mount: return "mount";
    case Action::del: return "delete";
    }
    return "push";
}

namespace {

void quoted(std::string& out, std::string_view s) {
    out.push_back('"');
    util::json_escape(out, s);
    out.push_back('"');
}

// `"k":"v"` after a comma unless first.
void field(std::string& out, bool& first, std::string_view k, std::string_view v) {
    if (!first) {
        out.push_back(',');
    }
    first = false;
    quoted(out, k);
    out.push_back(':');
    quoted(out, v);
}

void number(std::string& out, bool& first, std::string_view k, std::uint64_t v) {
    if (!first) {
        out.push_back(',');
    }
    first = false;
    quoted(out, k);
    out.push_back(':');
    out += std::to_string(v);
}

} // namespace

std::string event_json(const Event& e, std::string_view id, std::int64_t time_ns,
                       const Source& src) {
    std::string o;
    o.reserve(512);
    append_event_json(o, e, id, time_ns, src);
    return o;
}

void append_event_json(std::string& o, const Event& e, std::string_view id, std::int64_t time_ns,
                       const Source& src) {
    bool first = true;
    o.push_back('{');
    field(o, first, "id", id);
    o += ",\"timestamp\":\"";
    append_rfc3339_nano(o, time_ns);
    o.push_back('"');
    field(o, first, "action", action_name(e.action));
    // target: the descriptor's fields, then Distribution's own (all omitempty)
    o += ",\"target\":{";
    bool t = true;
    if (!e.media_type.empty()) {
        field(o, t, "mediaType", e.media_type);
    }
    if (e.size != 0) {
        number(o, t, "size", e.size);
    }
    if (!e.digest.empty()) {
        field(o, t, "digest", e.digest);
    }
    if (e.size != 0) {
        number(o, t, "length", e.size);
    }
    if (!e.repository.empty()) {
        field(o, t, "repository", e.repository);
    }
    if (!e.from_repository.empty()) {
        field(o, t, "fromRepository", e.from_repository);
    }
    if (!e.url_kind.empty()) {
        o += ",\"url\":\"";
        util::json_escape(o, e.url_scheme);
        o += "://";
        util::json_escape(o, e.url_host);
        o += "/v2/";
        util::json_escape(o, e.repository);
        o.push_back('/');
        o += e.url_kind;
        o.push_back('/');
        util::json_escape(o, e.digest);
        o.push_back('"');
        t = false;
    }
    if (!e.tag.empty()) {
        field(o, t, "tag", e.tag);
    }
    if (!e.references.empty()) {
        o += t ? "\"references\":[" : ",\"references\":[";
        for (std::size_t i = 0; i < e.references.size(); ++i) {
            const Descriptor& d = e.references[i];
            o += i == 0 ? "{" : ",{";
            bool f = true;
            if (!d.media_type.empty()) {
                field(o, f, "mediaType", d.media_type);
            }
            if (d.size != 0) {
                number(o, f, "size", d.size);
            }
            field(o, f, "digest", d.digest);
            o += d.extra_json;
            o.push_back('}');
        }
        o.push_back(']');
    }
    o.push_back('}');
    // request: id, method and useragent always; addr and host when known
    o += ",\"request\":{";
    bool r = true;
    field(o, r, "id", e.request.id);
    if (!e.request.addr.empty()) {
        field(o, r, "addr", e.request.addr);
    }
    if (!e.request.host.empty()) {
        field(o, r, "host", e.request.host);
    }
    field(o, r, "method", e.request.method);
    field(o, r, "useragent", e.request.useragent);
    o.push_back('}');
    o += ",\"actor\":{";
    if (!e.actor.empty()) {
        bool a = true;
        field(o, a, "name", e.actor);
    }
    o.push_back('}');
    o += ",\"source\":{";
    bool s = true;
    if (!src.addr.empty()) {
        field(o, s, "addr", src.addr);
    }
    if (!src.instance_id.empty()) {
        field(o, s, "instanceID", src.instance_id);
    }
    o += "}}";
}

std::string envelope(const std::vector<std::string_view>& events_json) {
    std::size_t n = 16;
    for (std::string_view e : events_json) {
        n += e.size() + 1;
    }
    std::string o;
    o.reserve(n);
    o += "{\"events\":[";
    for (std::size_t i = 0; i < events_json.size(); ++i) {
        if (i != 0) {
            o.push_back(',');
        }
        o += events_json[i];
    }
    o += "]}";
    return o;
}

void append_rfc3339_nano(std::string& out, std::int64_t ns) {
    const std::int64_t secs = ns >= 0 ? ns / 1'000'000'000 : 0;
    auto frac = static_cast<std::uint64_t>(ns >= 0 ? ns % 1'000'000'000 : 0);
    // The seconds' text changes once a second: kept per thread.
    thread_local std::int64_t cached_secs = -1;
    thread_local char cached[32];
    thread_local std::size_t cached_n = 0;
    if (secs != cached_secs) {
        std::time_t tt = static_cast<std::time_t>(secs);
        std::tm tm{};
        (void)gmtime_r(&tt, &tm);
        cached_n = std::strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_secs = secs;
    }
    out.append(cached, cached_n);
    if (frac != 0) {
        char f[10];
        f[0] = '.';
        for (int i = 9; i >= 1; --i) {
            f[i] = static_cast<char>('0' + frac % 10);
            frac /= 10;
        }
        int n = 10;
        while (f[n - 1] == '0') {
            --n;
        }
        out.append(f, static_cast<std::size_t>(n));
    }
    out.push_back('Z');
}

std::string rfc3339_nano(std::int64_t ns) {
    std::string out;
    append_rfc3339_nano(out, ns);
    return out;
}

std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace rp::observe
