// SPDX-License-Identifier: Apache-2.0
#include "storage/layout.hh"

#include <doctest/doctest.h>

using namespace rp::storage;

TEST_CASE("paths match Distribution's filesystem layout byte for byte") {
    auto d =
        *Digest::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    std::string hex(d.hex());
    CHECK(layout::blob_data(d) == "blobs/sha256/e3/" + hex + "/data");
    CHECK(layout::layer_link("lib/x", d) == "repositories/lib/x/_layers/sha256/" + hex + "/link");
    CHECK(layout::revision_link("lib/x", d) ==
          "repositories/lib/x/_manifests/revisions/sha256/" + hex + "/link");
    CHECK(layout::tag_current_link("lib/x", "v1") ==
          "repositories/lib/x/_manifests/tags/v1/current/link");
    CHECK(layout::tag_index_link("lib/x", "v1", d) ==
          "repositories/lib/x/_manifests/tags/v1/index/sha256/" + hex + "/link");
    std::string id = "0a1b2c3d-0000-4000-8000-0123456789ab";
    CHECK(layout::upload_data("lib/x", id) == "repositories/lib/x/_uploads/" + id + "/data");
    CHECK(layout::upload_startedat("lib/x", id) ==
          "repositories/lib/x/_uploads/" + id + "/startedat");
    CHECK(layout::parent("a/b/c") == "a/b");
}

TEST_CASE("upload ids must be lowercase UUIDs") {
    CHECK(layout::valid_upload_id("0a1b2c3d-0000-4000-8000-0123456789ab"));
    CHECK_FALSE(layout::valid_upload_id("0A1B2C3D-0000-4000-8000-0123456789AB"));
    CHECK_FALSE(layout::valid_upload_id("../../etc/passwd"));
    CHECK_FALSE(layout::valid_upload_id(""));
}
