// SPDX-License-Identifier: Apache-2.0
#pragma once

// Tags list and catalog: GETs whose whole JSON body is parsed (simdjson, in
// place in the engine's padded body string) and checked against what setup
// created.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine.hh"
#include "util/result.hh"

namespace rp::bench {

// The parser state a flow keeps between responses (simdjson, kept out of
// this header).
struct JsonLists;

struct JsonListsDeleter {
    void operator()(JsonLists* p) const;
};
using JsonListsPtr = std::unique_ptr<JsonLists, JsonListsDeleter>;
JsonListsPtr make_json_lists();

// Reads the string array `key` ("tags", "repositories") of a JSON object;
// null or absent is an empty list. The views stay valid until the next call
// with the same `state`. `body` must be followed by body_padding_bytes.
util::Result<void> parse_name_list(JsonLists& state, std::string_view body, std::string_view key,
                                   std::vector<std::string_view>& out);

// Catalog order: lexical by path component ("a/b" before "a-b").
bool catalog_less(std::string_view a, std::string_view b) noexcept;

// GET /v2/<repo>/tags/list without n: the list must hold exactly the tags
// setup created, "latest" and t0 .. t<tags-1>, each once (checked in one
// pass, without sorting); whether the server sent it sorted is recorded.
class TagsListFlow final : public Flow {
  public:
    TagsListFlow(std::string repo, std::size_t tags);
    void begin(std::uint64_t op, Request& req) override;
    Step on_response(const Response& r, Request& req, std::string& why) override;
    bool saw_unsorted() const { return unsorted_; }

  private:
    bool check(std::string& why);

    std::string repo_;
    std::vector<std::uint8_t> seen_;
    std::vector<std::string_view> got_;
    JsonListsPtr json_;
    bool unsorted_ = false;
};

// One operation is a whole catalog walk with n=page, following Link headers;
// every repository named prefix + index (index < expected) must appear
// exactly once across the walk. Others may exist and are counted.
class CatalogFlow final : public Flow {
  public:
    CatalogFlow(std::uint64_t page, std::string prefix, std::size_t expected);
    void begin(std::uint64_t op, Request& req) override;
    Step on_response(const Response& r, Request& req, std::string& why) override;

    bool saw_unsorted() const { return unsorted_; }
    bool honours_n() const { return honours_n_; }
    std::uint64_t walks() const { return walks_; }
    std::uint64_t pages() const { return pages_total_; }
    std::uint64_t others() const { return others_; }
    std::uint64_t last_walk_names() const { return last_walk_names_; }
    // Appends every name received, each followed by '\n' (for a duplicate
    // check after the timed part).
    void keep_names(std::string* out) { names_out_ = out; }

  private:
    void count_name(std::string_view name);
    Step finish_walk(std::string& why);

    std::uint64_t page_;
    std::string prefix_;
    std::vector<std::uint8_t> seen_;
    std::vector<std::string_view> got_;
    std::string last_;
    JsonListsPtr json_;
    std::string* names_out_ = nullptr;
    std::uint64_t pages_ = 0;
    std::uint64_t names_ = 0;
    std::uint64_t walks_ = 0;
    std::uint64_t pages_total_ = 0;
    std::uint64_t others_ = 0;
    std::uint64_t last_walk_names_ = 0;
    bool unsorted_ = false;
    bool honours_n_ = true;
    bool duplicate_ = false;
};

} // namespace rp::bench
