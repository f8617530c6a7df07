// SPDX-License-Identifier: Apache-2.0
#include "list_flows.hh"

#include <simdjson.h>

#include <algorithm>

#include "flows.hh"
#include "util/strings.hh"

namespace rp::bench {

static_assert(simdjson::SIMDJSON_PADDING <= body_padding_bytes);

struct JsonLists {
    simdjson::ondemand::parser parser;
};

void JsonListsDeleter::operator()(JsonLists* p) const { delete p; }

JsonListsPtr make_json_lists() { return JsonListsPtr(new JsonLists); }

util::Result<void> parse_name_list(JsonLists& state, std::string_view body, std::string_view key,
                                   std::vector<std::string_view>& out) {
    namespace od = simdjson::ondemand;
    out.clear();
    auto bad = [&](simdjson::error_code e) {
        return util::Error::of(util::Errc::invalid, "bad JSON list (" + std::string(key) +
                                                        "): " + simdjson::error_message(e));
    };
    simdjson::padded_string_view in(body.data(), body.size(), body.size() + body_padding_bytes);
    od::document doc;
    if (auto e = state.parser.iterate(in).get(doc); e) {
        return bad(e);
    }
    od::object top;
    if (auto e = doc.get_object().get(top); e) {
        return bad(e);
    }
    od::value list;
    auto e = top.find_field_unordered(key).get(list);
    if (e == simdjson::NO_SUCH_FIELD) {
        return util::Ok{};
    }
    bool null = false;
    if (e || list.is_null().get(null) || null) {
        return e ? bad(e) : util::Result<void>(util::Ok{});
    }
    od::array arr;
    if (auto ae = list.get_array().get(arr); ae) {
        return bad(ae);
    }
    for (auto item : arr) {
        std::string_view s;
        if (auto se = item.get_string().get(s); se) {
            return bad(se);
        }
        out.push_back(s);
    }
    return util::Ok{};
}

bool catalog_less(std::string_view a, std::string_view b) noexcept {
    auto key = [](char c) { return c == '/' ? 0 : static_cast<unsigned char>(c); };
    std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        if (key(a[i]) != key(b[i])) {
            return key(a[i]) < key(b[i]);
        }
    }
    return a.size() < b.size();
}

TagsListFlow::TagsListFlow(std::string repo, std::size_t tags)
    : repo_(std::move(repo)), seen_(tags + 1), json_(make_json_lists()) {
    got_.reserve(tags + 16);
}

void TagsListFlow::begin(std::uint64_t, Request& req) {
    req.target.assign("/v2/").append(repo_).append("/tags/list");
    req.sink = Sink::collect;
}

bool TagsListFlow::check(std::string& why) {
    // seen_[i] counts "t<i>"; the last slot counts "latest".
    std::fill(seen_.begin(), seen_.end(), std::uint8_t{0});
    std::size_t tags = seen_.size() - 1;
    for (std::string_view t : got_) {
        std::size_t slot = seen_.size();
        if (t == "latest") {
            slot = tags;
        } else if (t.size() >= 2 && t[0] == 't' && (t.size() == 2 || t[1] != '0')) {
            auto i = util::parse_u64(t.substr(1));
            slot = i && *i < tags ? static_cast<std::size_t>(*i) : slot;
        }
        if (slot == seen_.size() || seen_[slot] > 0) {
            why = "tags list has " + std::string(slot == seen_.size() ? "unknown" : "repeated") +
                  " tag '" + std::string(t) + "'";
            return false;
        }
        seen_[slot] = 1;
    }
    if (got_.size() != seen_.size()) {
        why = "tags list has " + std::to_string(got_.size()) + " tags, want " +
              std::to_string(seen_.size());
        return false;
    }
    return true;
}

Step TagsListFlow::on_response(const Response& r, Request&, std::string& why) {
    if (!expect_status(r, 200, why)) {
        return Step::failed;
    }
    if (auto p = parse_name_list(*json_, r.body, "tags", got_); !p) {
        why = p.error().detail;
        return Step::failed;
    }
    unsorted_ = unsorted_ || !std::is_sorted(got_.begin(), got_.end());
    return check(why) ? Step::done : Step::failed;
}

CatalogFlow::CatalogFlow(std::uint64_t page, std::string prefix, std::size_t expected)
    : page_(page), prefix_(std::move(prefix)), seen_(expected), json_(make_json_lists()) {
    got_.reserve(page_ + 16);
    last_.reserve(256);
}

void CatalogFlow::begin(std::uint64_t, Request& req) {
    std::fill(seen_.begin(), seen_.end(), std::uint8_t{0});
    pages_ = 0;
    names_ = 0;
    others_ = 0;
    duplicate_ = false;
    last_.clear();
    req.target.assign("/v2/_catalog?n=").append(std::to_string(page_));
    req.sink = Sink::collect;
}

void CatalogFlow::count_name(std::string_view name) {
    ++names_;
    if (!last_.empty() && !catalog_less(last_, name)) {
        unsorted_ = true;
        duplicate_ = duplicate_ || last_ == name;
    }
    last_.assign(name);
    if (names_out_ != nullptr) {
        names_out_->append(name).push_back('\n');
    }
    if (name.substr(0, prefix_.size()) != prefix_) {
        ++others_;
        return;
    }
    auto index = util::parse_u64(name.substr(prefix_.size()));
    if (!index || *index >= seen_.size()) {
        ++others_;
        return;
    }
    std::uint8_t& s = seen_[static_cast<std::size_t>(*index)];
    s = static_cast<std::uint8_t>(std::min(s + 1, 2));
}

Step CatalogFlow::on_response(const Response& r, Request& req, std::string& why) {
    if (!expect_status(r, 200, why)) {
        return Step::failed;
    }
    if (auto p = parse_name_list(*json_, r.body, "repositories", got_); !p) {
        why = p.error().detail;
        return Step::failed;
    }
    if (pages_ == 0 && got_.size() > page_) {
        honours_n_ = false;
    }
    ++pages_;
    ++pages_total_;
    for (std::string_view name : got_) {
        count_name(name);
    }
    std::string_view next = url_path(link_next(r.head->link));
    if (next.empty()) {
        return finish_walk(why);
    }
    if (pages_ > 2 * (seen_.size() / page_ + 1) + 10000) {
        why = "catalog walk does not end (" + std::to_string(pages_) + " pages)";
        return Step::failed;
    }
    req.target.assign(next);
    return Step::next;
}

Step CatalogFlow::finish_walk(std::string& why) {
    ++walks_;
    last_walk_names_ = names_;
    std::size_t missing = static_cast<std::size_t>(std::count(seen_.begin(), seen_.end(), 0));
    std::size_t twice = static_cast<std::size_t>(std::count(seen_.begin(), seen_.end(), 2));
    if (missing == 0 && twice == 0 && !duplicate_) {
        return Step::done;
    }
    why = "catalog walk of " + std::to_string(pages_) + " pages: " + std::to_string(missing) +
          " of " + std::to_string(seen_.size()) + " repositories missing, " +
          std::to_string(twice) + " listed more than once";
    if (missing > 0) {
        auto it = std::find(seen_.begin(), seen_.end(), 0);
        why += " (first missing: " + prefix_ + std::to_string(it - seen_.begin()) + ")";
    }
    return Step::failed;
}

} // namespace rp::bench
