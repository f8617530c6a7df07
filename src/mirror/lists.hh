// SPDX-License-Identifier: Apache-2.0
#pragma once

// A mirrored repository's tag list and referrers are the upstream's, not
// just what the cache happens to hold (cosign and the OCI 1.1 referrers
// clients look for signatures there). They are fetched through the mirror
// and kept for the mirror's list_ttl_s, per exact query.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mirror/ttl_map.hh"
#include "util/result.hh"

namespace rp::mirror {

// An upstream tag list, as ringport serves it: the tags, in the upstream's
// order, and the query of its next page if it has one.
struct TagPage {
    std::vector<std::string> tags;
    std::string next_query; // "n=…&last=…" from the upstream's Link, or empty
};
// Parses `{"name":…,"tags":[…]}` (tags may be null) and the Link header's
// query. Pure.
util::Result<TagPage> parse_tag_page(std::string_view body, std::string_view link);

struct Listed {
    std::string body;
    std::string content_type;
    std::string link;             // tag lists: the next page's query
    bool filters_applied = false; // referrers: OCI-Filters-Applied: artifactType
};

// Per exact query; bounded (`last` and `n` take any value).
class ListCache : public TtlMap<Listed> {
  public:
    explicit ListCache(std::size_t max_entries = 4096) : TtlMap(max_entries) {}
};

} // namespace rp::mirror
