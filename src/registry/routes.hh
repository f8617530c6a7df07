// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>

namespace rp::registry {

enum class RouteKind {
    base,         // /v2/
    catalog,      // /v2/_catalog
    tags_list,    // /v2/<name>/tags/list
    manifest,     // /v2/<name>/manifests/<reference>
    blob,         // /v2/<name>/blobs/<digest>
    upload_start, // /v2/<name>/blobs/uploads/
    upload,       // /v2/<name>/blobs/uploads/<uuid>
    referrers,    // /v2/<name>/referrers/<digest>
    healthz,
    readyz,
    status,          // /ringport/v1/status: what the process holds (counts and bounds)
    gc,              // /ringport/v1/gc: garbage collection runs (GET: the last; POST: start one)
    retention,       // /ringport/v1/retention: retention runs (GET: the last; POST: start one)
    scrub,           // /ringport/v1/scrub: the online scrub's progress and findings (GET)
    repository,      // /ringport/v1/repositories/<name>: GET its insights, DELETE removes it whole
    repositories,    // /ringport/v1/repositories: the list, sorted, filtered, paginated
    repository_tags, // /ringport/v1/repositories/<name>/-/tags: tags with their details
    repository_tag,  // /ringport/v1/repositories/<name>/-/tags/<tag>: GET, DELETE
    repository_manifest, // /ringport/v1/repositories/<name>/-/manifests/<digest>: GET, DELETE
    insights,            // /ringport/v1/insights: the registry's totals and top repositories
    timeseries,          // /ringport/v1/timeseries: stored bytes and pulls per day, requests
    mirrors,             // /ringport/v1/mirrors: each mirror's cache and upstream (GET)
    metrics,             // /metrics: Prometheus text format
    ui,                  // /ui and /ui/...: the web UI (ui/ui.hh)
    session,             // /ringport/v1/session: the web UI's sign-in (GET, POST, DELETE)
    not_found,
};

struct Route {
    RouteKind kind = RouteKind::not_found;
    std::string name; // repository name, unvalidated
    std::string ref;  // reference, digest or upload id, unvalidated
};

// Matches a decoded request path. Pure. Names may contain '/', so each
// endpoint is found from the end of the path (its fixed suffix).
Route match_route(std::string_view path);

// What the UI's own listener serves ([ui] listen): the UI, its sign-in, the
// admin API and the health checks, and of /v2/ only blob reads (the UI reads
// an image's config); no other part of /v2/, and no /metrics.
bool served_to_ui(RouteKind kind, std::string_view method) noexcept;

} // namespace rp::registry
