// SPDX-License-Identifier: Apache-2.0
#include "storage/layout.hh"

#include "storage/names.hh"
#include "util/assert.hh"

namespace rp::storage::layout {

namespace {

std::string join(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (std::string_view p : parts) {
        if (!out.empty()) {
            out.push_back('/');
        }
        out.append(p);
    }
    return out;
}

std::string alg_hex(const Digest& d) {
    RP_ASSERT(!d.empty());
    return join({d.algorithm_name(), d.hex()});
}

std::string checked_repo(std::string_view name) {
    RP_ASSERT(valid_repo_name(name));
    return join({"repositories", name});
}

} // namespace

std::string blob_dir(const Digest& d) {
    RP_ASSERT(!d.empty());
    return join({"blobs", d.algorithm_name(), d.hex().substr(0, 2), d.hex()});
}

std::string blob_data(const Digest& d) { return blob_dir(d) + "/data"; }

std::string repo_dir(std::string_view name) { return checked_repo(name); }

std::string layers_dir(std::string_view name) { return checked_repo(name) + "/_layers"; }

std::string layer_link(std::string_view name, const Digest& d) {
    return join({layers_dir(name), alg_hex(d), "link"});
}

std::string revisions_dir(std::string_view name) {
    return checked_repo(name) + "/_manifests/revisions";
}

std::string revision_link(std::string_view name, const Digest& d) {
    return join({revisions_dir(name), alg_hex(d), "link"});
}

std::string tags_dir(std::string_view name) { return checked_repo(name) + "/_manifests/tags"; }

std::string tag_dir(std::string_view name, std::string_view tag) {
    RP_ASSERT(valid_tag(tag));
    return join({tags_dir(name), tag});
}

std::string tag_current_link(std::string_view name, std::string_view tag) {
    return tag_dir(name, tag) + "/current/link";
}

std::string tag_index_link(std::string_view name, std::string_view tag, const Digest& d) {
    return join({tag_dir(name, tag), "index", alg_hex(d), "link"});
}

std::string uploads_dir(std::string_view name) { return checked_repo(name) + "/_uploads"; }

std::string upload_dir(std::string_view name, std::string_view uuid) {
    RP_ASSERT(valid_upload_id(uuid));
    return join({uploads_dir(name), uuid});
}

std::string upload_data(std::string_view name, std::string_view uuid) {
    return upload_dir(name, uuid) + "/data";
}

std::string upload_startedat(std::string_view name, std::string_view uuid) {
    return upload_dir(name, uuid) + "/startedat";
}

std::string_view parent(std::string_view path) noexcept {
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
}

bool valid_upload_id(std::string_view id) noexcept {
    if (id.size() != 36) {
        return false;
    }
    for (std::size_t i = 0; i < id.size(); ++i) {
        char c = id[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return false;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

} // namespace rp::storage::layout
