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
};

// The request an event came from (Distribution's RequestRecord). Empty for
// events of the registry's own duties (retention).
struct RequestInfo {
    std::string id;
    std::string addr;
    std::string host;
    std::string method;
    std::string useragent;
};

struct Event {
    Action action = Action::push;
    // target
    std::string media_type;
    std::string digest;
    std::uint64_t size = 0; // 0: absent (Distribution omits an empty size)
    std::string repository;
    std::string from_repository; // mounts
    std::string url;
    std::string tag;
    std::vector<Descriptor> references;
    RequestInfo request;
    std::string actor; // the authenticated user or token subject ("" anonymous)
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

// Distribution's envelope around events already in JSON.
inline constexpr std::string_view envelope_media_type =
    "application/vnd.docker.distribution.events.v1+json";
std::string envelope(const std::vector<std::string_view>& events_json);

// Nanoseconds since the epoch as RFC 3339 with its fraction (Go's
// RFC3339Nano: trailing zeros of the fraction dropped), in UTC.
std::string rfc3339_nano(std::int64_t ns);
std::int64_t now_ns() noexcept;

} // namespace rp::observe
