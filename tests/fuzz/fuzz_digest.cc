// SPDX-License-Identifier: Apache-2.0
// Fuzzes the names that become paths: storage::Digest::parse, valid_repo_name,
// valid_tag, layout::valid_upload_id, and the layout paths built from them.
// Input: the whole input is tried as each kind of name; split on '\n' it is
// also read as "name\ntag\ndigest\nupload-id" and every path is built.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hh"
#include "storage/digest.hh"
#include "storage/layout.hh"
#include "storage/names.hh"

namespace {

namespace st = rp::storage;
namespace layout = rp::storage::layout;

void check_digest(std::string_view s) {
    auto d = st::Digest::parse(s);
    if (!d) {
        return;
    }
    RP_FUZZ_CHECK(d->str() == s, "a digest round-trips exactly");
    std::string_view hex = d->hex();
    RP_FUZZ_CHECK(hex.size() == st::digest_hex_len(d->algorithm()), "hex length fits the alg");
    RP_FUZZ_CHECK(hex.find_first_not_of("0123456789abcdef") == std::string_view::npos,
                  "the hex is lowercase hex");
    RP_FUZZ_CHECK(std::string(d->algorithm_name()) + ":" + std::string(hex) == s,
                  "algorithm and hex make up the whole string");
    RP_FUZZ_CHECK(st::DigestHash{}(*d) == st::DigestHash{}(s), "heterogeneous lookup agrees");
}

void check_component_chars(std::string_view c) {
    RP_FUZZ_CHECK(!c.empty(), "no empty path component");
    RP_FUZZ_CHECK(c != "." && c != "..", "no '.' or '..' path component");
}

void check_repo_name(std::string_view s) {
    if (!st::valid_repo_name(s)) {
        return;
    }
    RP_FUZZ_CHECK(s.size() <= st::repo_name_bytes_max && s.size() <= 255, "a name is short");
    RP_FUZZ_CHECK(s.find("..") == std::string_view::npos, "a name never holds '..'");
    RP_FUZZ_CHECK(s.front() != '/' && s.back() != '/', "a name never starts or ends with '/'");
    RP_FUZZ_CHECK(s.find("//") == std::string_view::npos, "a name never holds '//'");
    RP_FUZZ_CHECK(s.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-/") ==
                      std::string_view::npos,
                  "a name holds only [a-z0-9._-/]");
    RP_FUZZ_CHECK(!st::repo_name_less(s, s), "repo_name_less is irreflexive");
}

void check_tag(std::string_view s) {
    if (!st::valid_tag(s)) {
        return;
    }
    RP_FUZZ_CHECK(s.size() <= st::tag_bytes_max, "a tag is at most 128 bytes");
    RP_FUZZ_CHECK(s.find('/') == std::string_view::npos, "a tag never holds '/'");
    RP_FUZZ_CHECK(s.front() != '.' && s.front() != '-', "a tag starts with a word character");
    check_component_chars(s);
}

// A relative path under the v2 dir that cannot climb out of it.
void check_path(std::string_view p, std::string_view prefix) {
    RP_FUZZ_CHECK(p.substr(0, prefix.size()) == prefix, "a path starts where it belongs");
    RP_FUZZ_CHECK(!p.empty() && p.front() != '/' && p.back() != '/', "a path is relative");
    RP_FUZZ_CHECK(p.find("/../") == std::string_view::npos, "a path never holds '/../'");
    RP_FUZZ_CHECK(p.find('\0') == std::string_view::npos, "a path holds no NUL");
    for (std::string_view rest = p;;) {
        auto slash = rest.find('/');
        check_component_chars(rest.substr(0, slash));
        if (slash == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(slash + 1);
    }
    std::string_view up = layout::parent(p);
    RP_FUZZ_CHECK(up.empty() || (p.substr(0, up.size()) == up && p[up.size()] == '/'),
                  "parent() is a prefix ending at a '/'");
}

std::vector<std::string_view> split_lines(std::string_view s) {
    std::vector<std::string_view> out;
    for (;;) {
        auto nl = s.find('\n');
        out.push_back(s.substr(0, nl));
        if (nl == std::string_view::npos || out.size() == 4) {
            return out;
        }
        s.remove_prefix(nl + 1);
    }
}

void check_layout(std::string_view name, std::string_view tag, std::string_view dg,
                  std::string_view id) {
    if (!st::valid_repo_name(name)) {
        return;
    }
    std::string repo = "repositories/" + std::string(name) + "/";
    check_path(layout::repo_dir(name), repo.substr(0, repo.size() - 1));
    check_path(layout::layers_dir(name), repo);
    check_path(layout::revisions_dir(name), repo);
    check_path(layout::tags_dir(name), repo);
    check_path(layout::uploads_dir(name), repo);
    auto d = st::Digest::parse(dg);
    if (d) {
        check_path(layout::blob_dir(*d), "blobs/");
        check_path(layout::blob_data(*d), "blobs/");
        check_path(layout::layer_link(name, *d), repo);
        check_path(layout::revision_link(name, *d), repo);
    }
    if (st::valid_tag(tag)) {
        check_path(layout::tag_dir(name, tag), repo);
        check_path(layout::tag_current_link(name, tag), repo);
        if (d) {
            check_path(layout::tag_index_link(name, tag, *d), repo);
        }
    }
    if (layout::valid_upload_id(id)) {
        check_path(layout::upload_dir(name, id), repo);
        check_path(layout::upload_data(name, id), repo);
        check_path(layout::upload_startedat(name, id), repo);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    check_digest(in);
    check_repo_name(in);
    check_tag(in);
    if (layout::valid_upload_id(in)) {
        check_path(in, "");
    }
    auto f = split_lines(in);
    f.resize(4);
    for (std::string_view s : f) {
        check_digest(s);
        check_repo_name(s);
        check_tag(s);
    }
    // Catalog order is a strict weak order: asymmetric.
    RP_FUZZ_CHECK(!(st::repo_name_less(f[0], f[1]) && st::repo_name_less(f[1], f[0])),
                  "repo_name_less is asymmetric");
    check_layout(f[0], f[1], f[2], f[3]);
    return 0;
}
