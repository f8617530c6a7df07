// SPDX-License-Identifier: Apache-2.0
#pragma once

// The on-disk tree, identical to CNCF Distribution's filesystem driver
// (registry/storage/paths.go). This file is the only place paths are built.
//
//   <root>/docker/registry/v2/
//   ├── blobs/<alg>/<hex[0:2]>/<hex>/data          raw bytes: layers, configs AND manifests
//   └── repositories/<name...>/                    name may contain '/', e.g. library/ubuntu
//       ├── _layers/<alg>/<hex>/link               repo may serve blob <alg>:<hex>
//       ├── _manifests/
//       │   ├── revisions/<alg>/<hex>/link         manifest exists in repo
//       │   └── tags/<tag>/
//       │       ├── current/link                   digest the tag points to now
//       │       └── index/<alg>/<hex>/link         every digest this tag ever pointed to
//       └── _uploads/<uuid>/
//           ├── data                               bytes received so far
//           ├── startedat                          RFC3339 UTC
//           └── hashstates/<alg>/<offset>          Distribution's Go hash state (ignored)
//
// Every link file holds the bare digest string ("sha256:..."), no newline.
// All paths below are relative to <root>/docker/registry/v2 (the "v2 dir"),
// and every name, tag, digest and upload id has been validated before it
// gets here (the asserts are the pair of that validation).

#include <string>
#include <string_view>

#include "storage/digest.hh"

namespace rp::storage::layout {

constexpr std::string_view v2_dir = "docker/registry/v2";
constexpr std::string_view lock_file = ".ringport.lock"; // in <root>, beside docker/

std::string blob_dir(const Digest& d);  // blobs/<alg>/<xx>/<hex>
std::string blob_data(const Digest& d); // blobs/<alg>/<xx>/<hex>/data
std::string repo_dir(std::string_view name);
std::string layer_link(std::string_view name, const Digest& d);
std::string layers_dir(std::string_view name);
std::string revision_link(std::string_view name, const Digest& d);
std::string revisions_dir(std::string_view name);
std::string tags_dir(std::string_view name);
std::string tag_dir(std::string_view name, std::string_view tag);
std::string tag_current_link(std::string_view name, std::string_view tag);
std::string tag_index_link(std::string_view name, std::string_view tag, const Digest& d);
std::string uploads_dir(std::string_view name);
std::string upload_dir(std::string_view name, std::string_view uuid);
std::string upload_data(std::string_view name, std::string_view uuid);
std::string upload_startedat(std::string_view name, std::string_view uuid);

// The directory part of a relative path ("a/b/c" -> "a/b"; "c" -> "").
std::string_view parent(std::string_view path) noexcept;

// Upload ids are lowercase RFC 4122 UUIDs (what Distribution makes too).
bool valid_upload_id(std::string_view id) noexcept;

} // namespace rp::storage::layout
