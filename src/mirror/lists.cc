// SPDX-License-Identifier: Apache-2.0
#include "mirror/lists.hh"

#include <simdjson.h>

namespace rp::mirror {

using util::Errc;
using util::Error;

util::Result<TagPage> parse_tag_page(std::string_view body, std::string_view link) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(body);
    simdjson::dom::object o;
    if (parser.parse(padded).get_object().get(o) != simdjson::SUCCESS) {
        return Error::of(Errc::invalid, "upstream tag list is not a JSON object");
    }
    TagPage p;
    simdjson::dom::element tags;
    if (o["tags"].get(tags) == simdjson::SUCCESS && !tags.is_null()) {
        simdjson::dom::array a;
        if (tags.get_array().get(a) != simdjson::SUCCESS) {
            return Error::of(Errc::invalid, "upstream tag list: tags is not an array");
        }
        for (simdjson::dom::element t : a) {
            std::string_view s;
            if (t.get_string().get(s) != simdjson::SUCCESS) {
                return Error::of(Errc::invalid, "upstream tag list: a tag is not a string");
            }
            p.tags.emplace_back(s);
        }
    }
    // `<…/tags/list?n=2&last=b>; rel="next"`: only its query is kept (the
    // path names the upstream's repository, not the cache's).
    auto lt = link.find('<');
    auto gt = link.find('>');
    if (lt != std::string_view::npos && gt != std::string_view::npos && lt < gt &&
        link.find("next") != std::string_view::npos) {
        std::string_view target = link.substr(lt + 1, gt - lt - 1);
        if (auto q = target.find('?'); q != std::string_view::npos) {
            p.next_query = std::string(target.substr(q + 1));
        }
    }
    return p;
}

} // namespace rp::mirror
