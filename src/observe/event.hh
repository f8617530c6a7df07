// SPDX-License-Identifier: Apache-2.0
#pragma once

// A registry event as Distribution's notifications describe it: what was
// pushed, pulled, mounted or deleted, by which request and whom. The webhooks
// send it in Distribution's envelope (event_json), and the audit log records
// the same facts in its own line.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rp::observe {

enum class Action : std::uint8_t { push, pull, mount, del };
std::string_view action_name(Action a) noexcept;

// A reference of a pushed manifest (Distribution's `includereferences`).
struct Descriptor {
    std::string media_type;
    std::string digest;
    std::uint64_t size = 0;
    std::string extra_json; // ",\"urls\":…" etc., written as is after the digest
};

// The request an event came from (Distribution's RequestRecord). Empty for
// events of the registry's own duties (retention).
struct RequestInfo {
    std::string_view id;
    std::string_view addr;
    std::string_view host;
    std::string_view method;
    std::string_view useragent;
};

// An event as the registry describes it: views of what the caller holds for
// the length of the call that records it (no copy on the pull path).
struct Event {
    Action action = Action::push;
    // target
    std::string_view media_type;
    std::string_view digest;
    std::uint64_t size = 0; // 0: absent (Distribution omits an empty size)
    std::string_view repository;
    std::string_view from_repository; // mounts
    // target.url, when url_kind is set: <scheme>://<host>/v2/<repository>/<url_kind>/<digest>
    std::string_view url_scheme;
    std::string_view url_host;
    std::string_view url_kind; // "manifests" or "blobs"
    std::string_view tag;
    std::vector<Descriptor> references;
    RequestInfo request;
    std::string_view actor; // the authenticated user or token subject ("" anonymous)
};

// The registry instance that generates events (Distribution's SourceRecord).
struct Source {
    std::string addr;        // host name and port
    std::string instance_id; // a UUID, new at each start
};

// The event as Distribution 2.8 writes it in an envelope's `events` array:
// its field names, order and omissions. One line of JSON (no newline).
std::string event_json(const Event& e, std::string_view id, std::int64_t time_ns,
                       const Source& src);
// The same, appended to `out` (a buffer reused call after call).
void append_event_json(std::string& out, const Event& e, std::string_view id, std::int64_t time_ns,
                       const Source& src);

// Distribution's envelope around events already in JSON.
inline constexpr std::string_view envelope_media_type =
    "application/vnd.docker.distribution.events.v1+json";
std::string envelope(const std::vector<std::string_view>& events_json);

// Nanoseconds since the epoch as RFC 3339 with its fraction (Go's
// RFC3339Nano: trailing zeros of the fraction dropped), in UTC.
std::string rfc3339_nano(std::int64_t ns);
void append_rfc3339_nano(std::string& out, std::int64_t ns);
std::int64_t now_ns() noexcept;

} // namespace rp::observe
