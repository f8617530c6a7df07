# SPDX-License-Identifier: Apache-2.0
"""Docker/Distribution API behaviours ringport must have (DESIGN.md section 4).

Most tests share one registry (`shared_registry`) and work in their own fresh
repository; catalog tests and tests needing settings start their own.

Where Distribution 2.8.2 (RINGTEST_TARGET=distribution) behaves otherwise, the
test follows the OCI spec / Distribution v3 / DESIGN.md and says so in a comment
starting "Distribution 2.8.2 differs:". Those tests are expected to fail against
2.8.2:
- manifests: OCI manifest without Accept or with */* (2.8.2 and v3 answer 404;
  DESIGN serves as stored), foreign layers with urls, OCI-Subject, malformed digest
  references (500), invalid tags (plain-text router 404), `{}` body (500);
- blobs: monolithic POST (202), sha512 Docker-Content-Digest (sha256), bad
  algorithm on monolithic POST (202), 500-0 range (no Content-Range);
- uploads: 416 for out-of-order chunks (2.8.2 ignores Content-Range), unknown
  upload (BLOB_UPLOAD_INVALID), relative Location headers (absolute + _state);
- mount without `from` (202);
- tags list order and n/last/Link pagination (2.8.2 ignores them);
- catalog n above the maximum (400 PAGINATION_NUMBER_INVALID in 2.8.2 and v3;
  DESIGN clamps);
- tag deletion (400 DIGEST_INVALID);
- name validation (plain-text 404 / 301 redirects / 500);
- referrers API (absent), /healthz and /readyz (absent).
"""
import json
import time

import pytest

from ringtest import oci
from ringtest.client import path_of

ACCEPT_ALL = ", ".join([oci.OCI_MANIFEST, oci.OCI_INDEX, oci.DOCKER_MANIFEST, oci.DOCKER_LIST])


@pytest.fixture(scope="module")
def host(shared_registry):
    return shared_registry.host


@pytest.fixture
def name():
    return oci.unique_name("api")


def call(host, method, path, **kw):
    return oci.request(host, method, path, **kw)


def start_upload(host, name):
    r = call(host, "POST", f"/v2/{name}/blobs/uploads/")
    assert r.status == 202, r
    assert r.header("Location"), r
    return r


def patch(host, location, data, content_range=None):
    h = {"Content-Type": oci.OCTET}
    if content_range is not None:
        h["Content-Range"] = content_range
    return call(host, "PATCH", path_of(location), body=data, headers=h)


def finish(host, location, d, data=b"", headers=None):
    h = {"Content-Type": oci.OCTET}
    h.update(headers or {})
    return call(host, "PUT", oci.with_query(location, digest=d), body=data, headers=h)


def make_repo(host, name):
    """A repository with one small manifest (no layers) tagged `latest`."""
    cfg = oci.image_config()
    oci.push_blob(host, name, cfg)
    body = oci.image_manifest(oci.descriptor(oci.OCI_CONFIG, cfg), [])
    r = oci.put_manifest(host, name, "latest", body, oci.OCI_MANIFEST)
    assert r.status == 201, r


def catalog(host, query=""):
    r = call(host, "GET", "/v2/_catalog" + query)
    assert r.status == 200, r
    return r, json.loads(r.body)["repositories"]


def tags(host, name, query=""):
    r = call(host, "GET", f"/v2/{name}/tags/list" + query)
    assert r.status == 200, r
    return r, json.loads(r.body)["tags"] or []


# =============================================================================
# Headers and errors
# =============================================================================

def test_api_version_header_is_on_every_response_including_errors(host, name):
    img = oci.push_image(host, name, "v1")
    blob = img.layers[0]["digest"]
    up = start_upload(host, name)
    pr = patch(host, up.header("Location"), b"abc")
    responses = [
        call(host, "GET", "/v2/"),
        call(host, "HEAD", "/v2/"),
        up,
        pr,
        call(host, "GET", path_of(pr.header("Location"))),
        oci.get_manifest(host, name, "v1", accept=oci.OCI_MANIFEST),
        oci.get_manifest(host, name, "v1", accept=oci.OCI_MANIFEST, method="HEAD"),
        oci.get_manifest(host, name, "v1", accept=oci.OCI_MANIFEST,
                         headers={"If-None-Match": f'"{img.digest}"'}),
        call(host, "GET", f"/v2/{name}/blobs/{blob}", headers={"Range": "bytes=0-0"}),
        oci.get_manifest(host, name, "missing", accept=oci.OCI_MANIFEST),
        oci.get_manifest(host, name, "missing", accept=oci.OCI_MANIFEST, method="HEAD"),
        call(host, "GET", f"/v2/{name}/blobs/sha256:abc"),
        call(host, "GET", f"/v2/{oci.unique_name('none')}/tags/list"),
        call(host, "GET", f"/v2/{name}/bogus"),
        call(host, "POST", f"/v2/{name}/manifests/v1"),
        call(host, "GET", "/v2/_catalog"),
    ]
    for r in responses:
        assert r.header("Docker-Distribution-Api-Version") == oci.API_VERSION, r


def test_base_endpoint_answers_200_to_get_and_head(host):
    assert call(host, "GET", "/v2/").status == 200
    assert call(host, "HEAD", "/v2/").status == 200


def test_errors_are_oci_json_with_code_and_message(host, name):
    oci.assert_error(oci.get_manifest(host, name, "nope", accept=oci.OCI_MANIFEST),
                     404, "MANIFEST_UNKNOWN")
    oci.assert_error(call(host, "GET", f"/v2/{name}/blobs/{oci.digest(b'nope')}"),
                     404, "BLOB_UNKNOWN")
    oci.assert_error(call(host, "GET", f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")
    oci.assert_error(call(host, "GET", f"/v2/{name}/blobs/sha256:abc"), 400, "DIGEST_INVALID")


# =============================================================================
# Manifests: content type, digest, ETag, negotiation
# =============================================================================

def test_manifest_get_and_head_carry_media_type_digest_etag_and_length(host, name):
    img = oci.push_image(host, name, "v1")
    for ref in ("v1", img.digest):
        g = oci.get_manifest(host, name, ref, accept=oci.OCI_MANIFEST)
        assert g.status == 200, g
        assert g.body == img.manifest
        assert g.header("Content-Type") == oci.OCI_MANIFEST, g
        assert g.header("Docker-Content-Digest") == img.digest, g
        assert g.header("ETag") == f'"{img.digest}"', g
        assert int(g.header("Content-Length")) == len(img.manifest), g
        h = oci.get_manifest(host, name, ref, accept=oci.OCI_MANIFEST, method="HEAD")
        assert h.status == 200 and h.body == b"", h
        assert h.header("Content-Type") == oci.OCI_MANIFEST, h
        assert h.header("Docker-Content-Digest") == img.digest, h
        assert int(h.header("Content-Length")) == len(img.manifest), h


def test_if_none_match_with_the_etag_answers_304(host, name):
    img = oci.push_image(host, name, "v1")
    for ref in ("v1", img.digest):
        for etag in (f'"{img.digest}"', img.digest):
            r = oci.get_manifest(host, name, ref, accept=oci.OCI_MANIFEST,
                                 headers={"If-None-Match": etag})
            assert r.status == 304 and r.body == b"", r
        r = oci.get_manifest(host, name, ref, accept=oci.OCI_MANIFEST,
                             headers={"If-None-Match": f'"{oci.digest(b"other")}"'})
        assert r.status == 200 and r.body == img.manifest, r


def test_manifest_without_accept_is_served_as_stored(host, name):
    # Distribution 2.8.2 differs: 404 MANIFEST_UNKNOWN "OCI manifest found, but accept
    # header does not support OCI manifests" (v3 too); DESIGN serves it as stored.
    img = oci.push_image(host, name, "v1")
    r = oci.get_manifest(host, name, "v1")
    assert r.status == 200, r
    assert r.header("Content-Type") == oci.OCI_MANIFEST and r.body == img.manifest, r
    r = oci.get_manifest(host, name, img.digest, method="HEAD")
    assert r.status == 200 and r.header("Content-Type") == oci.OCI_MANIFEST, r


def test_manifest_with_a_wildcard_accept_is_served_as_stored(host, name):
    # Distribution 2.8.2 differs: 404 MANIFEST_UNKNOWN for */* (v3 too).
    img = oci.push_image(host, name, "v1")
    r = oci.get_manifest(host, name, "v1", accept="*/*")
    assert r.status == 200, r
    assert r.header("Content-Type") == oci.OCI_MANIFEST and r.body == img.manifest, r


def test_manifest_with_an_accept_listing_only_other_types_is_404_manifest_unknown(host, name):
    oci.push_image(host, name, "v1")
    accept = f"{oci.DOCKER_MANIFEST}, {oci.DOCKER_LIST}"
    oci.assert_error(oci.get_manifest(host, name, "v1", accept=accept), 404, "MANIFEST_UNKNOWN")
    r = oci.get_manifest(host, name, "v1", accept=accept, method="HEAD")
    assert r.status == 404 and r.body == b"", r


def test_accept_list_with_parameters_selects_the_stored_type(host, name):
    img = oci.push_image(host, name, "v1")
    accept = f"{oci.DOCKER_MANIFEST}, {oci.OCI_MANIFEST}; q=0.5, {oci.OCI_INDEX};q=0.4"
    r = oci.get_manifest(host, name, "v1", accept=accept)
    assert r.status == 200 and r.body == img.manifest, r
    assert r.header("Content-Type") == oci.OCI_MANIFEST, r


def test_several_accept_headers_are_combined(host, name):
    # docker sends one Accept header per media type.
    img = oci.push_image(host, name, "v1")
    with oci.RawConnection(host) as c:
        head = [f"GET /v2/{name}/manifests/v1 HTTP/1.1", f"Host: {host}",
                f"Accept: {oci.DOCKER_MANIFEST}", f"Accept: {oci.DOCKER_LIST}",
                f"Accept: {oci.OCI_MANIFEST}", f"Accept: {oci.OCI_INDEX}",
                "Connection: close", "", ""]
        c.send("\r\n".join(head).encode())
        r = c.read_response()
    assert r.status == 200, r
    assert r.header("Content-Type") == oci.OCI_MANIFEST and r.body == img.manifest, r


def test_docker_schema2_manifest_round_trips_byte_for_byte(host, name):
    img = oci.push_image(host, name, "v1", docker=True)
    r = oci.get_manifest(host, name, "v1", accept=oci.DOCKER_MANIFEST)
    assert r.status == 200, r
    assert r.header("Content-Type") == oci.DOCKER_MANIFEST, r
    assert r.header("Docker-Content-Digest") == img.digest, r
    assert r.body == img.manifest


def test_docker_manifest_list_round_trips_and_needs_its_children(host, name):
    img = oci.push_image(host, name, None, docker=True)
    child = dict(img.descriptor, platform={"architecture": "amd64", "os": "linux"})
    body = oci.image_index([child], media_type=oci.DOCKER_LIST)
    r = oci.put_manifest(host, name, "list", body, oci.DOCKER_LIST)
    assert r.status == 201, r
    r = oci.get_manifest(host, name, "list", accept=ACCEPT_ALL)
    assert r.status == 200 and r.body == body, r
    assert r.header("Content-Type") == oci.DOCKER_LIST, r

    missing = {"mediaType": oci.DOCKER_MANIFEST, "digest": oci.digest(b"no such child"),
               "size": 13, "platform": {"architecture": "arm64", "os": "linux"}}
    bad = oci.image_index([child, missing], media_type=oci.DOCKER_LIST)
    oci.assert_error(oci.put_manifest(host, name, "broken", bad, oci.DOCKER_LIST),
                     400, "MANIFEST_BLOB_UNKNOWN")


def test_oci_index_whose_child_is_missing_is_manifest_blob_unknown(host, name):
    img = oci.push_image(host, name, None)
    missing = {"mediaType": oci.OCI_MANIFEST, "digest": oci.digest(b"no such child"), "size": 13}
    body = oci.image_index([img.descriptor, missing])
    oci.assert_error(oci.put_manifest(host, name, "idx", body, oci.OCI_INDEX),
                     400, "MANIFEST_BLOB_UNKNOWN")
    oci.assert_error(oci.get_manifest(host, name, "idx", accept=ACCEPT_ALL), 404,
                     "MANIFEST_UNKNOWN")
    good = oci.image_index([img.descriptor])
    assert oci.put_manifest(host, name, "idx", good, oci.OCI_INDEX).status == 201


def test_oci_index_without_media_type_is_served_as_an_index(host, name):
    img = oci.push_image(host, name, None)
    body = oci.image_index([img.descriptor], with_media_type=False)
    r = oci.put_manifest(host, name, "idx", body, oci.OCI_INDEX)
    assert r.status == 201, r
    r = oci.get_manifest(host, name, "idx", accept=ACCEPT_ALL)
    assert r.status == 200 and r.body == body, r
    assert r.header("Content-Type") == oci.OCI_INDEX, r


def test_oci_manifest_without_media_type_is_served_as_an_image_manifest(host, name):
    img = oci.push_image(host, name, "v1", with_media_type=False)
    assert b"mediaType\": \"application/vnd.oci.image.manifest" not in img.manifest
    r = oci.get_manifest(host, name, "v1", accept=ACCEPT_ALL)
    assert r.status == 200 and r.body == img.manifest, r
    assert r.header("Content-Type") == oci.OCI_MANIFEST, r


def test_manifest_with_a_missing_layer_is_manifest_blob_unknown_and_not_stored(host, name):
    cfg = oci.image_config()
    oci.push_blob(host, name, cfg)
    layer = oci.tar_gz_layer("x", b"never pushed")
    body = oci.image_manifest(oci.descriptor(oci.OCI_CONFIG, cfg),
                              [oci.descriptor(oci.OCI_LAYER_GZIP, layer)])
    oci.assert_error(oci.put_manifest(host, name, "v1", body, oci.OCI_MANIFEST),
                     400, "MANIFEST_BLOB_UNKNOWN")
    r = oci.get_manifest(host, name, oci.digest(body), accept=oci.OCI_MANIFEST)
    assert r.status == 404, r


def test_manifest_with_a_missing_config_is_manifest_blob_unknown(host, name):
    layer = oci.tar_gz_layer("x", b"pushed")
    oci.push_blob(host, name, layer)
    body = oci.image_manifest(oci.descriptor(oci.OCI_CONFIG, oci.image_config()),
                              [oci.descriptor(oci.OCI_LAYER_GZIP, layer)])
    oci.assert_error(oci.put_manifest(host, name, "v1", body, oci.OCI_MANIFEST),
                     400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("flavour", ["oci", "docker"])
def test_foreign_layers_with_urls_skip_the_presence_check(host, name, flavour):
    # Distribution 2.8.2 differs: rejects layers with urls unless its
    # validation.manifests.urls.allow config lets them in (500 here).
    docker = flavour == "docker"
    cfg = oci.image_config()
    oci.push_blob(host, name, cfg)
    local = oci.tar_gz_layer("local", b"pushed layer")
    oci.push_blob(host, name, local)
    foreign = oci.tar_gz_layer("foreign", b"a layer only on a foreign server")
    foreign_mt = oci.DOCKER_FOREIGN_LAYER if docker else oci.OCI_LAYER_NONDIST_GZIP
    fd = oci.descriptor(foreign_mt, foreign,
                        urls=[f"https://example.invalid/blobs/{oci.digest(foreign)}"])
    mt = oci.DOCKER_MANIFEST if docker else oci.OCI_MANIFEST
    body = oci.image_manifest(
        oci.descriptor(oci.DOCKER_CONFIG if docker else oci.OCI_CONFIG, cfg),
        [fd, oci.descriptor(oci.DOCKER_LAYER if docker else oci.OCI_LAYER_GZIP, local)],
        media_type=mt)
    r = oci.put_manifest(host, name, "win", body, mt)
    assert r.status == 201, r
    r = oci.get_manifest(host, name, "win", accept=mt)
    assert r.status == 200 and r.body == body, r


@pytest.mark.parametrize("media_type", [oci.DOCKER_SCHEMA1_SIGNED, oci.DOCKER_SCHEMA1])
def test_schema1_manifest_put_is_refused_with_manifest_invalid(host, name, media_type):
    layer = oci.tar_gz_layer("x", b"schema1 layer")
    d = oci.push_blob(host, name, layer)
    body = oci.dumps({
        "schemaVersion": 1, "name": name, "tag": "old", "architecture": "amd64",
        "fsLayers": [{"blobSum": d}],
        "history": [{"v1Compatibility": json.dumps({"id": "a" * 64})}],
    }, indent=3)
    oci.assert_error(oci.put_manifest(host, name, "old", body, media_type), 400, "MANIFEST_INVALID")
    assert oci.get_manifest(host, name, "old", accept=media_type).status == 404


def test_push_by_digest_with_a_body_of_another_digest_is_digest_invalid(host, name):
    img = oci.push_image(host, name, None)
    other = oci.image_manifest(json.loads(img.manifest)["config"], img.layers,
                               annotations={"x": "y"})
    r = oci.put_manifest(host, name, img.digest, other, oci.OCI_MANIFEST)
    oci.assert_error(r, 400, "DIGEST_INVALID")
    assert oci.get_manifest(host, name, oci.digest(other), accept=oci.OCI_MANIFEST).status == 404
    r = oci.get_manifest(host, name, img.digest, accept=oci.OCI_MANIFEST)
    assert r.status == 200 and r.body == img.manifest, r


def test_push_by_digest_stores_an_untagged_manifest(host, name):
    oci.push_image(host, name, "tagged")
    img = oci.push_image(host, name, None)
    r = oci.get_manifest(host, name, img.digest, accept=oci.OCI_MANIFEST)
    assert r.status == 200 and r.body == img.manifest, r
    _, listed = tags(host, name)
    assert listed == ["tagged"]


def test_manifest_put_answers_201_with_location_and_digest(host, name):
    img_body = oci.push_image(host, name, None)
    r = oci.put_manifest(host, name, "again", img_body.manifest, oci.OCI_MANIFEST)
    assert r.status == 201, r
    assert r.header("Docker-Content-Digest") == img_body.digest, r
    assert path_of(r.header("Location")) == f"/v2/{name}/manifests/{img_body.digest}", r


def test_manifest_put_with_a_subject_answers_oci_subject_even_if_the_subject_is_missing(host, name):
    # Distribution 2.8.2 differs: no OCI-Subject header (no referrers support).
    subject = {"mediaType": oci.OCI_MANIFEST, "digest": oci.digest(b"absent subject"), "size": 99}
    img = oci.push_image(host, name, None, subject=subject, artifact_type="application/vnd.x")
    assert oci.get_manifest(host, name, img.digest, accept=oci.OCI_MANIFEST).status == 200
    # push again to read the PUT response headers
    r = oci.put_manifest(host, name, img.digest, img.manifest, oci.OCI_MANIFEST)
    assert r.status == 201, r
    assert r.header("OCI-Subject") == subject["digest"], r


@pytest.mark.parametrize("body", [b"blablabla", b"", b"[]", b'{"schemaVersion": 2, "config": 5}'],
                         ids=["garbage", "empty", "array", "wrong-config-type"])
def test_manifest_put_that_is_not_a_manifest_is_manifest_invalid(host, name, body):
    oci.assert_error(oci.put_manifest(host, name, "bad", body, oci.OCI_MANIFEST),
                     400, "MANIFEST_INVALID")


def test_manifest_put_of_an_empty_object_is_manifest_invalid(host, name):
    # Distribution 2.8.2 differs: 500 UNKNOWN for "{}".
    oci.assert_error(oci.put_manifest(host, name, "bad", b"{}", oci.OCI_MANIFEST),
                     400, "MANIFEST_INVALID")


MALFORMED_DIGESTS = ["sha256:totallywrong", "sha256:" + "a" * 63, "sha256:" + "A" * 64,
                     "md5:" + "a" * 32, "sha256:"]


@pytest.mark.parametrize("ref", MALFORMED_DIGESTS)
def test_malformed_digest_references_to_manifests_are_400_digest_invalid(host, name, ref):
    # Distribution 2.8.2 differs: GET/HEAD/PUT treat them as tags and fail with 500.
    img = oci.push_image(host, name, "v1")
    oci.assert_error(oci.get_manifest(host, name, ref, accept=oci.OCI_MANIFEST),
                     400, "DIGEST_INVALID")
    assert oci.get_manifest(host, name, ref, accept=oci.OCI_MANIFEST, method="HEAD").status == 400
    oci.assert_error(call(host, "DELETE", f"/v2/{name}/manifests/{ref}"), 400, "DIGEST_INVALID")
    oci.assert_error(oci.put_manifest(host, name, ref, img.manifest, oci.OCI_MANIFEST),
                     400, "DIGEST_INVALID")


@pytest.mark.parametrize("tag", ["t" * 129, "-leading-dash", ".leading-dot", "plus+sign"])
def test_invalid_tags_are_refused_on_put_with_tag_invalid(host, name, tag):
    # Distribution 2.8.2 differs: its router does not match, plain-text 404 (v3 too).
    img = oci.push_image(host, name, None)
    oci.assert_error(oci.put_manifest(host, name, tag, img.manifest, oci.OCI_MANIFEST),
                     400, "TAG_INVALID")


@pytest.mark.parametrize("tag", ["t" * 129, ".INVALID_MANIFEST_NAME"])
def test_invalid_tags_are_unknown_manifests_on_get_and_delete(host, name, tag):
    # The conformance suite requires 404 for GET/HEAD of ".INVALID_MANIFEST_NAME".
    # Distribution 2.8.2 differs: plain-text 404 without an OCI error body.
    oci.push_image(host, name, "v1")
    oci.assert_error(oci.get_manifest(host, name, tag, accept=oci.OCI_MANIFEST),
                     404, "MANIFEST_UNKNOWN")
    assert oci.get_manifest(host, name, tag, method="HEAD").status == 404
    oci.assert_error(call(host, "DELETE", f"/v2/{name}/manifests/{tag}"), 404, "MANIFEST_UNKNOWN")


def test_a_tag_of_128_characters_is_accepted(host, name):
    img = oci.push_image(host, name, "t" * 128)
    r = oci.get_manifest(host, name, "t" * 128, accept=oci.OCI_MANIFEST)
    assert r.status == 200 and r.body == img.manifest, r


# =============================================================================
# Blobs
# =============================================================================

BLOB_2K = bytes(range(256)) * 8


def test_blob_head_has_length_and_digest_but_no_body(host, name):
    d = oci.push_blob(host, name, BLOB_2K)
    r = call(host, "HEAD", f"/v2/{name}/blobs/{d}")
    assert r.status == 200 and r.body == b"", r
    assert r.header("Content-Length") == str(len(BLOB_2K)), r
    assert r.header("Docker-Content-Digest") == d, r
    g = call(host, "GET", f"/v2/{name}/blobs/{d}")
    assert g.status == 200 and g.body == BLOB_2K, g
    assert g.header("Docker-Content-Digest") == d, g


def test_unknown_blob_is_404_blob_unknown(host, name):
    oci.push_blob(host, name, b"something")
    d = oci.digest(b"nothing")
    oci.assert_error(call(host, "GET", f"/v2/{name}/blobs/{d}"), 404, "BLOB_UNKNOWN")
    r = call(host, "HEAD", f"/v2/{name}/blobs/{d}")
    assert r.status == 404 and r.body == b"", r


def test_blob_is_visible_only_in_repositories_that_link_it(host, name):
    d = oci.push_blob(host, name, b"private to one repository")
    other = oci.unique_name("other")
    oci.push_blob(host, other, b"unrelated")
    oci.assert_error(call(host, "GET", f"/v2/{other}/blobs/{d}"), 404, "BLOB_UNKNOWN")
    assert call(host, "HEAD", f"/v2/{other}/blobs/{d}").status == 404


@pytest.mark.parametrize("rng,start,end", [
    ("bytes=500-1499", 500, 1499), ("bytes=500-", 500, 2047),
    ("bytes=-500", 1548, 2047), ("bytes=2000-5000", 2000, 2047), ("bytes=0-0", 0, 0)])
def test_blob_range_request_answers_206_with_content_range(host, name, rng, start, end):
    d = oci.push_blob(host, name, BLOB_2K)
    r = call(host, "GET", f"/v2/{name}/blobs/{d}", headers={"Range": rng})
    assert r.status == 206, r
    assert r.body == BLOB_2K[start:end + 1]
    assert r.header("Content-Length") == str(end - start + 1), r
    assert r.header("Content-Range") == f"bytes {start}-{end}/{len(BLOB_2K)}", r


@pytest.mark.parametrize("rng", ["bytes=5000-10000", "bytes=2048-", "bytes=500-0"])
def test_unsatisfiable_blob_range_answers_416(host, name, rng):
    # Distribution 2.8.2 differs for 500-0: 416 without Content-Range (and a
    # Content-Length that does not match its body).
    d = oci.push_blob(host, name, BLOB_2K)
    r = call(host, "GET", f"/v2/{name}/blobs/{d}", headers={"Range": rng})
    assert r.status == 416, r
    assert r.header("Content-Range") == f"bytes */{len(BLOB_2K)}", r


def test_monolithic_post_with_digest_answers_201(host, name):
    # Distribution 2.8.2 differs: 202 and the body is ignored.
    data = b"one request upload"
    d = oci.digest(data)
    r = call(host, "POST", oci.with_query(f"/v2/{name}/blobs/uploads/", digest=d), body=data,
             headers={"Content-Type": oci.OCTET})
    assert r.status == 201, r
    assert r.header("Docker-Content-Digest") == d, r
    assert path_of(r.header("Location")) == f"/v2/{name}/blobs/{d}", r
    g = call(host, "GET", f"/v2/{name}/blobs/{d}")
    assert g.status == 200 and g.body == data, g


def test_monolithic_post_with_a_wrong_digest_is_digest_invalid(host, name):
    # Distribution 2.8.2 differs: 202 (the body is ignored).
    data = b"one request upload, wrong digest"
    wrong = oci.digest(b"something else")
    r = call(host, "POST", oci.with_query(f"/v2/{name}/blobs/uploads/", digest=wrong), body=data,
             headers={"Content-Type": oci.OCTET})
    oci.assert_error(r, 400, "DIGEST_INVALID")
    assert call(host, "HEAD", f"/v2/{name}/blobs/{wrong}").status == 404
    assert call(host, "HEAD", f"/v2/{name}/blobs/{oci.digest(data)}").status == 404


def test_sha512_blob_pushed_with_post_then_put_is_served_under_its_digest(host, name):
    # Distribution 2.8.2 differs: Docker-Content-Digest and Location name the sha256 digest.
    data = b"a blob addressed by sha512"
    d = oci.digest(data, "sha512")
    up = start_upload(host, name)
    r = finish(host, up.header("Location"), d, data)
    assert r.status == 201, r
    assert r.header("Docker-Content-Digest") == d, r
    assert path_of(r.header("Location")) == f"/v2/{name}/blobs/{d}", r
    g = call(host, "GET", f"/v2/{name}/blobs/{d}")
    assert g.status == 200 and g.body == data, g
    assert g.header("Docker-Content-Digest") == d, g
    h = call(host, "HEAD", f"/v2/{name}/blobs/{d}")
    assert h.status == 200 and h.header("Content-Length") == str(len(data)), h


def test_sha512_blob_pushed_in_chunks_with_the_last_chunk_on_the_final_put(host, name):
    data = oci.random_bytes(3000, 512)
    d = oci.digest(data, "sha512")
    up = start_upload(host, name)
    r = patch(host, up.header("Location"), data[:1000], "0-999")
    assert r.status == 202, r
    r = patch(host, r.header("Location"), data[1000:2000], "1000-1999")
    assert r.status == 202, r
    r = finish(host, r.header("Location"), d, data[2000:], {"Content-Range": "2000-2999"})
    assert r.status == 201, r
    g = call(host, "GET", f"/v2/{name}/blobs/{d}")
    assert g.status == 200 and g.body == data, g


def test_sha512_blob_pushed_with_a_single_post(host, name):
    # Distribution 2.8.2 differs: 202, monolithic POST is not supported.
    data = b"single post sha512"
    d = oci.digest(data, "sha512")
    r = call(host, "POST", oci.with_query(f"/v2/{name}/blobs/uploads/", digest=d), body=data,
             headers={"Content-Type": oci.OCTET})
    assert r.status == 201, r
    assert call(host, "GET", f"/v2/{name}/blobs/{d}").body == data


def test_unknown_digest_algorithm_is_digest_invalid(host, name):
    data = b"md5 is not a registry digest"
    bad = "md5:" + "0" * 32
    up = start_upload(host, name)
    oci.assert_error(finish(host, up.header("Location"), bad, data), 400, "DIGEST_INVALID")
    oci.assert_error(call(host, "GET", f"/v2/{name}/blobs/{bad}"), 400, "DIGEST_INVALID")


def test_unknown_digest_algorithm_on_a_monolithic_post_is_digest_invalid(host, name):
    # Distribution 2.8.2 differs: 202 (the digest of a POST is not looked at).
    r = call(host, "POST", oci.with_query(f"/v2/{name}/blobs/uploads/", digest="md5:" + "0" * 32),
             body=b"abc", headers={"Content-Type": oci.OCTET})
    oci.assert_error(r, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("ref", ["sha256:abc", "sha256:" + "A" * 64, "sha256:" + "a" * 65,
                                 "sha256", "latest"])
def test_malformed_blob_digests_are_400_digest_invalid(host, name, ref):
    # Distribution 2.8.2 differs for "sha256" and "latest" (no colon): its router
    # answers a plain-text 404.
    oci.push_blob(host, name, b"x")
    oci.assert_error(call(host, "GET", f"/v2/{name}/blobs/{ref}"), 400, "DIGEST_INVALID")
    assert call(host, "HEAD", f"/v2/{name}/blobs/{ref}").status == 400
    oci.assert_error(call(host, "DELETE", f"/v2/{name}/blobs/{ref}"), 400, "DIGEST_INVALID")


def test_final_put_with_a_mismatched_digest_is_digest_invalid_and_stores_nothing(host, name):
    data = b"the real content"
    wrong = oci.digest(b"a different content")
    up = start_upload(host, name)
    oci.assert_error(finish(host, up.header("Location"), wrong, data), 400, "DIGEST_INVALID")
    assert call(host, "HEAD", f"/v2/{name}/blobs/{wrong}").status == 404
    assert call(host, "HEAD", f"/v2/{name}/blobs/{oci.digest(data)}").status == 404


def test_final_put_without_a_digest_is_digest_invalid(host, name):
    up = start_upload(host, name)
    r = call(host, "PUT", path_of(up.header("Location")), body=b"abc",
             headers={"Content-Type": oci.OCTET})
    oci.assert_error(r, 400, "DIGEST_INVALID")


# =============================================================================
# Uploads
# =============================================================================

def test_upload_post_answers_202_with_location_and_upload_uuid(host, name):
    r = start_upload(host, name)
    loc = path_of(r.header("Location"))
    assert loc.startswith(f"/v2/{name}/blobs/uploads/"), r
    uid = loc.split("?")[0].rsplit("/", 1)[1]
    assert uid and r.header("Docker-Upload-UUID") == uid, r


def test_upload_get_reports_progress_with_204_range_and_uuid(host, name):
    up = start_upload(host, name)
    r = patch(host, up.header("Location"), b"0123456789")
    assert r.status == 202 and r.header("Range") == "0-9", r
    g = call(host, "GET", path_of(r.header("Location")))
    assert g.status == 204 and g.body == b"", g
    assert g.header("Range") == "0-9", g
    assert g.header("Docker-Upload-UUID") == up.header("Docker-Upload-UUID"), g
    assert g.header("Location"), g


def test_cancelled_upload_answers_204_then_blob_upload_unknown(host, name):
    up = start_upload(host, name)
    r = patch(host, up.header("Location"), b"partial")
    loc = r.header("Location")
    d = call(host, "DELETE", path_of(loc))
    assert d.status == 204, d
    oci.assert_error(call(host, "GET", path_of(loc)), 404, "BLOB_UPLOAD_UNKNOWN")
    oci.assert_error(patch(host, loc, b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    oci.assert_error(finish(host, loc, oci.digest(b"partial")), 404, "BLOB_UPLOAD_UNKNOWN")
    oci.assert_error(call(host, "DELETE", path_of(loc)), 404, "BLOB_UPLOAD_UNKNOWN")


def test_unknown_upload_is_404_blob_upload_unknown(host, name):
    # Distribution 2.8.2 differs: BLOB_UPLOAD_INVALID when the URL has no _state.
    start_upload(host, name)
    loc = f"/v2/{name}/blobs/uploads/7d1b7a4e-5a8f-4d7c-9a55-0c2b1f7e6a10"
    oci.assert_error(call(host, "GET", loc), 404, "BLOB_UPLOAD_UNKNOWN")
    oci.assert_error(patch(host, loc, b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    oci.assert_error(finish(host, loc, oci.digest(b"x"), b"x"), 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_continues_on_another_tcp_connection(host, name):
    data = oci.random_bytes(64 * 1024, 7)
    with oci.Connection(host) as a, oci.Connection(host) as b:
        assert a.local_port != b.local_port
        r = a.request("POST", f"/v2/{name}/blobs/uploads/")
        assert r.status == 202, r
        r = a.request("PATCH", path_of(r.header("Location")), body=data[:40000],
                      headers={"Content-Type": oci.OCTET, "Content-Range": "0-39999"})
        assert r.status == 202 and r.header("Range") == "0-39999", r
        r = b.request("PATCH", path_of(r.header("Location")), body=data[40000:],
                      headers={"Content-Type": oci.OCTET,
                               "Content-Range": f"40000-{len(data) - 1}"})
        assert r.status == 202 and r.header("Range") == f"0-{len(data) - 1}", r
        r = b.request("PUT", oci.with_query(r.header("Location"), digest=oci.digest(data)),
                      body=b"", headers={"Content-Type": oci.OCTET})
        assert r.status == 201, r
        g = a.request("GET", f"/v2/{name}/blobs/{oci.digest(data)}")
        assert g.status == 200 and g.body == data


def test_streamed_patches_without_content_range_append(host, name):
    parts = [b"first part, ", b"second part, ", b"third part"]
    up = start_upload(host, name)
    loc = up.header("Location")
    total = 0
    for p in parts:
        r = patch(host, loc, p)
        total += len(p)
        assert r.status == 202 and r.header("Range") == f"0-{total - 1}", r
        loc = r.header("Location")
    data = b"".join(parts)
    r = finish(host, loc, oci.digest(data))
    assert r.status == 201, r
    assert call(host, "GET", f"/v2/{name}/blobs/{oci.digest(data)}").body == data


def test_out_of_order_and_repeated_chunks_are_416_and_the_upload_survives(host, name):
    # Distribution 2.8.2 differs: it ignores Content-Range and appends (202).
    data = b"0123456789abcdefghij"
    up = start_upload(host, name)
    r = patch(host, up.header("Location"), data[:5], "0-4")
    assert r.status == 202 and r.header("Range") == "0-4", r
    loc = r.header("Location")
    assert patch(host, loc, data[10:15], "10-14").status == 416   # a gap
    assert patch(host, loc, data[:5], "0-4").status == 416        # a repeat
    assert patch(host, loc, data[3:8], "3-7").status == 416       # an overlap
    g = call(host, "GET", path_of(loc))
    assert g.status == 204 and g.header("Range") == "0-4", g
    r = patch(host, g.header("Location"), data[5:], "5-19")
    assert r.status == 202 and r.header("Range") == "0-19", r
    r = finish(host, r.header("Location"), oci.digest(data))
    assert r.status == 201, r
    assert call(host, "GET", f"/v2/{name}/blobs/{oci.digest(data)}").body == data


def test_first_chunk_not_starting_at_zero_is_416(host, name):
    # Distribution 2.8.2 differs: 202.
    up = start_upload(host, name)
    assert patch(host, up.header("Location"), b"abc", "3-5").status == 416


def test_final_put_with_an_out_of_order_chunk_is_416(host, name):
    # Distribution 2.8.2 differs: 201, the Content-Range of a PUT is ignored.
    data = b"abcdefgh"
    up = start_upload(host, name)
    r = patch(host, up.header("Location"), data[:4], "0-3")
    assert r.status == 202, r
    r2 = finish(host, r.header("Location"), oci.digest(data), data[5:],
                {"Content-Range": "5-7"})
    assert r2.status == 416, r2
    assert call(host, "HEAD", f"/v2/{name}/blobs/{oci.digest(data)}").status == 404


def test_final_put_may_carry_the_last_chunk(host, name):
    data = b"abcdefgh"
    up = start_upload(host, name)
    r = patch(host, up.header("Location"), data[:4], "0-3")
    assert r.status == 202, r
    r = finish(host, r.header("Location"), oci.digest(data), data[4:], {"Content-Range": "4-7"})
    assert r.status == 201, r
    assert call(host, "GET", f"/v2/{name}/blobs/{oci.digest(data)}").body == data


def test_chunks_at_every_alignment_are_stored_and_read_back_byte_for_byte(host, name):
    """Uploads are written with O_DIRECT in 4 KiB-aligned pieces and the
    unaligned head and tail of each PATCH buffered: chunks that start and end
    off every alignment (and span the 1 MiB receive buffers, reused several
    times within one PATCH) must still give back the exact bytes, not only the
    right digest (which is computed from the bytes received, not from the
    file)."""
    sizes = [1, 4095, 4097, 8192, 3, 600001, 524288, 524289, 4096, 70000, 1048577, 17,
             1048576, 1048575, 5 * 1048576 + 3, 4096]
    data = oci.random_bytes(sum(sizes), 4242)
    up = start_upload(host, name)
    loc, at = up.header("Location"), 0
    for n in sizes:
        r = patch(host, loc, data[at:at + n], f"{at}-{at + n - 1}")
        assert r.status == 202 and r.header("Range") == f"0-{at + n - 1}", (n, r)
        loc, at = r.header("Location"), at + n
    r = finish(host, loc, oci.digest(data), b"", {})
    assert r.status == 201, r
    got = call(host, "GET", f"/v2/{name}/blobs/{oci.digest(data)}").body
    assert len(got) == len(data) and got == data


def test_expect_100_continue_gets_an_interim_response_before_the_body(host, name):
    data = oci.random_bytes(100000, 100)
    up = start_upload(host, name)
    loc = path_of(up.header("Location"))
    with oci.RawConnection(host) as c:
        c.send((f"PATCH {loc} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {oci.OCTET}\r\n"
                f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n").encode())
        status, _ = c.read_head(timeout_s=5)
        assert status == 100, "expected HTTP/1.1 100 Continue before sending the body"
        c.send(data)
        r = c.read_response()
        assert r.status == 202 and r.header("Range") == f"0-{len(data) - 1}", r
        put = oci.with_query(r.header("Location"), digest=oci.digest(data))
        c.send((f"PUT {put} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {oci.OCTET}\r\n"
                "Content-Length: 0\r\n\r\n").encode())
        r = c.read_response()
        assert r.status == 201, r
    # and for a monolithic PUT carrying the whole blob
    data2 = b"monolithic with expect"
    up = start_upload(host, name)
    put = oci.with_query(up.header("Location"), digest=oci.digest(data2))
    with oci.RawConnection(host) as c:
        c.send((f"PUT {put} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {oci.OCTET}\r\n"
                f"Content-Length: {len(data2)}\r\nExpect: 100-continue\r\n\r\n").encode())
        status, _ = c.read_head(timeout_s=5)
        assert status == 100
        c.send(data2)
        r = c.read_response()
        assert r.status == 201, r
    assert call(host, "GET", f"/v2/{name}/blobs/{oci.digest(data)}").body == data


def test_chunked_transfer_encoding_bodies_are_accepted_for_patch_and_put(host, name):
    parts = [b"hello ", b"chunked ", b"world", b"!" * 70000]
    data = b"".join(parts)
    up = start_upload(host, name)
    r = call(host, "PATCH", path_of(up.header("Location")), chunks=parts[:3],
             headers={"Content-Type": oci.OCTET})
    assert r.status == 202 and r.header("Range") == "0-18", r
    r = call(host, "PUT", oci.with_query(r.header("Location"), digest=oci.digest(data)),
             chunks=parts[3:], headers={"Content-Type": oci.OCTET})
    assert r.status == 201, r
    assert call(host, "GET", f"/v2/{name}/blobs/{oci.digest(data)}").body == data
    # monolithic PUT with a chunked body
    data2 = b"monolithic chunked body"
    up = start_upload(host, name)
    r = call(host, "PUT", oci.with_query(up.header("Location"), digest=oci.digest(data2)),
             chunks=[data2[:5], data2[5:]], headers={"Content-Type": oci.OCTET})
    assert r.status == 201, r


def test_locations_are_relative_paths(host, name):
    # Distribution 2.8.2 differs: absolute URLs (http://host/...) with a _state query.
    def relative(r, prefix):
        loc = r.header("Location")
        assert loc and loc.startswith(prefix), r
        assert "_state" not in loc, r

    up = call(host, "POST", f"/v2/{name}/blobs/uploads/")
    relative(up, f"/v2/{name}/blobs/uploads/")
    pr = patch(host, up.header("Location"), b"abc")
    relative(pr, f"/v2/{name}/blobs/uploads/")
    relative(call(host, "GET", pr.header("Location")), f"/v2/{name}/blobs/uploads/")
    d = oci.digest(b"abc")
    done = finish(host, pr.header("Location"), d)
    relative(done, f"/v2/{name}/blobs/{d}")
    other = oci.unique_name("mnt")
    relative(call(host, "POST", f"/v2/{other}/blobs/uploads/?mount={d}&from={name}"),
             f"/v2/{other}/blobs/{d}")
    img = oci.push_image(host, name, None)
    relative(oci.put_manifest(host, name, "v1", img.manifest, oci.OCI_MANIFEST),
             f"/v2/{name}/manifests/{img.digest}")


# =============================================================================
# Cross-repository mount
# =============================================================================

def test_mount_with_from_answers_201_with_location_and_digest(host, name):
    src = oci.unique_name("src")
    data = b"mount me"
    d = oci.push_blob(host, src, data)
    r = call(host, "POST", f"/v2/{name}/blobs/uploads/?mount={d}&from={src}")
    assert r.status == 201, r
    assert r.header("Docker-Content-Digest") == d, r
    assert path_of(r.header("Location")) == f"/v2/{name}/blobs/{d}", r
    assert call(host, "GET", f"/v2/{name}/blobs/{d}").body == data


def test_mount_without_from_mounts_a_blob_known_in_another_repository(host, name):
    # Distribution 2.8.2 differs: 202, an upload session (no automatic discovery).
    src = oci.unique_name("src")
    d = oci.push_blob(host, src, b"discover me")
    r = call(host, "POST", f"/v2/{name}/blobs/uploads/?mount={d}")
    assert r.status == 201, r
    assert path_of(r.header("Location")) == f"/v2/{name}/blobs/{d}", r
    assert call(host, "GET", f"/v2/{name}/blobs/{d}").body == b"discover me"


def test_mount_of_an_unknown_blob_starts_an_upload_session(host, name):
    d = oci.digest(b"nobody has this")
    for query in (f"mount={d}", f"mount={d}&from={oci.unique_name('src')}"):
        r = call(host, "POST", f"/v2/{name}/blobs/uploads/?{query}")
        assert r.status == 202, r
        assert path_of(r.header("Location")).startswith(f"/v2/{name}/blobs/uploads/"), r


def test_mount_from_a_repository_without_the_blob_starts_an_upload_session(host, name):
    holder, empty = oci.unique_name("holder"), oci.unique_name("empty")
    d = oci.push_blob(host, holder, b"only the holder has it")
    oci.push_blob(host, empty, b"something else")
    r = call(host, "POST", f"/v2/{name}/blobs/uploads/?mount={d}&from={empty}")
    assert r.status == 202, r
    assert call(host, "HEAD", f"/v2/{name}/blobs/{d}").status == 404


# =============================================================================
# Tags
# =============================================================================

TAG_NAMES = ["v10", "alpha", "v2", "Beta", "latest", "1.0", "v1", "_under", "zeta", "a-b"]


def _tagged(host, name, tag_names):
    img = oci.push_image(host, name, None)
    for t in tag_names:
        r = oci.put_manifest(host, name, t, img.manifest, oci.OCI_MANIFEST)
        assert r.status == 201, r
    return img


def test_tags_list_without_n_is_complete_and_sorted(host, name):
    # Distribution 2.8.2 differs: directory order, not sorted.
    _tagged(host, name, TAG_NAMES)
    r, listed = tags(host, name)
    assert listed == sorted(TAG_NAMES), r
    assert json.loads(r.body)["name"] == name
    assert r.header("Link") is None, r


def test_tags_list_pages_with_n_last_and_link(host, name):
    # Distribution 2.8.2 differs: n and last are ignored, no Link.
    _tagged(host, name, TAG_NAMES)
    every = sorted(TAG_NAMES)
    r, page = tags(host, name, "?n=4")
    assert page == every[:4], r
    nxt = oci.link_next(r)
    assert nxt and nxt.startswith(f"/v2/{name}/tags/list?"), r
    seen = list(page)
    for _ in range(len(every)):  # bounded: one page per tag at most
        if nxt is None:
            break
        r = call(host, "GET", nxt)
        assert r.status == 200, r
        page = json.loads(r.body)["tags"]
        assert 0 < len(page) <= 4, r
        seen += page
        nxt = oci.link_next(r)
    assert seen == every
    assert len(page) == 2 and oci.link_next(r) is None, r  # 10 tags, pages of 4: 4 + 4 + 2


def test_tags_list_with_last_returns_the_tags_after_it(host, name):
    # Distribution 2.8.2 differs: last is ignored.
    _tagged(host, name, TAG_NAMES)
    every = sorted(TAG_NAMES)
    r, page = tags(host, name, f"?n=3&last={every[4]}")
    assert page == every[5:8], r
    r, page = tags(host, name, f"?last={every[4]}")
    assert page == every[5:], r
    r, page = tags(host, name, f"?n=3&last={every[-1]}")
    assert page == [] and r.header("Link") is None, r


def test_tags_list_with_n_zero_is_empty_without_link(host, name):
    # Distribution 2.8.2 differs: n=0 lists everything.
    _tagged(host, name, TAG_NAMES[:3])
    r, page = tags(host, name, "?n=0")
    assert page == [] and r.header("Link") is None, r


def test_tags_list_of_an_unknown_repository_is_404_name_unknown(host, name):
    oci.assert_error(call(host, "GET", f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")


# =============================================================================
# Catalog
# =============================================================================

def test_catalog_without_n_returns_the_first_100_with_a_link(registry):
    h = registry.host
    names = [f"r{i:03d}" for i in range(105)]
    for n in names:
        make_repo(h, n)
    r, repos = catalog(h)
    assert repos == names[:100], r
    nxt = oci.link_next(r)
    assert nxt and nxt.startswith("/v2/_catalog?"), r
    r = call(h, "GET", nxt)
    assert r.status == 200, r
    assert json.loads(r.body)["repositories"] == names[100:], r
    assert oci.link_next(r) is None, r


def test_catalog_pages_with_n_and_last(registry):
    h = registry.host
    names = ["alpha", "bravo", "charlie", "delta", "echo"]
    for n in names:
        make_repo(h, n)
    r, repos = catalog(h, "?n=2")
    assert repos == names[:2], r
    seen = list(repos)
    nxt = oci.link_next(r)
    for _ in range(len(names)):  # bounded
        if nxt is None:
            break
        r = call(h, "GET", nxt)
        assert r.status == 200, r
        seen += json.loads(r.body)["repositories"]
        nxt = oci.link_next(r)
    assert seen == names
    r, repos = catalog(h, "?n=2&last=bravo")
    assert repos == ["charlie", "delta"], r


def test_catalog_n_above_the_maximum_is_clamped():
    # Distribution 2.8.2 differs: 400 PAGINATION_NUMBER_INVALID (v3 too); DESIGN clamps.
    reg = oci.start_registry({"RINGPORT_CATALOG_MAX_ENTRIES": "3"})
    try:
        h = reg.host
        names = ["r1", "r2", "r3", "r4", "r5"]
        for n in names:
            make_repo(h, n)
        r, repos = catalog(h, "?n=10")
        assert repos == names[:3] and oci.link_next(r), r
        r, repos = catalog(h)
        assert repos == names[:3] and oci.link_next(r), r
    finally:
        reg.cleanup()


def test_catalog_orders_repositories_by_path_component(registry):
    h = registry.host
    names = ["a-b", "a/b", "a.b", "a_b", "ab", "a/b/c", "a0"]
    for n in names:
        make_repo(h, n)
    _, repos = catalog(h)
    assert repos == ["a/b", "a/b/c", "a-b", "a.b", "a0", "a_b", "ab"]


# =============================================================================
# Deletes
# =============================================================================

def test_deletes_answer_405_unsupported_when_disabled():
    reg = oci.start_registry({"RINGPORT_STORAGE_DELETE_ENABLED": "false"})
    try:
        h, n = reg.host, "nodelete"
        img = oci.push_image(h, n, "v1")
        blob = img.layers[0]["digest"]
        oci.assert_error(call(h, "DELETE", f"/v2/{n}/manifests/{img.digest}"), 405, "UNSUPPORTED")
        oci.assert_error(call(h, "DELETE", f"/v2/{n}/manifests/v1"), 405, "UNSUPPORTED")
        oci.assert_error(call(h, "DELETE", f"/v2/{n}/blobs/{blob}"), 405, "UNSUPPORTED")
        assert oci.get_manifest(h, n, "v1", accept=oci.OCI_MANIFEST).status == 200
        assert call(h, "HEAD", f"/v2/{n}/blobs/{blob}").status == 200
    finally:
        reg.cleanup()


def test_deleting_a_manifest_by_digest_removes_every_tag_pointing_at_it(host, name):
    img = _tagged(host, name, ["one", "two"])
    keep = oci.push_image(host, name, "keep")
    r = call(host, "DELETE", f"/v2/{name}/manifests/{img.digest}")
    assert r.status == 202, r
    for ref in ("one", "two", img.digest):
        oci.assert_error(oci.get_manifest(host, name, ref, accept=oci.OCI_MANIFEST),
                         404, "MANIFEST_UNKNOWN")
    _, listed = tags(host, name)
    assert listed == ["keep"]
    r = oci.get_manifest(host, name, "keep", accept=oci.OCI_MANIFEST)
    assert r.status == 200 and r.body == keep.manifest


def test_deleting_a_tag_leaves_the_manifest_reachable_by_digest(host, name):
    # Distribution 2.8.2 differs: tag deletion answers 400 DIGEST_INVALID.
    img = _tagged(host, name, ["one", "two"])
    r = call(host, "DELETE", f"/v2/{name}/manifests/one")
    assert r.status == 202, r
    oci.assert_error(oci.get_manifest(host, name, "one", accept=oci.OCI_MANIFEST),
                     404, "MANIFEST_UNKNOWN")
    r = oci.get_manifest(host, name, img.digest, accept=oci.OCI_MANIFEST)
    assert r.status == 200 and r.body == img.manifest, r
    assert oci.get_manifest(host, name, "two", accept=oci.OCI_MANIFEST).status == 200
    _, listed = tags(host, name)
    assert listed == ["two"]


def test_deleting_an_unknown_tag_is_404_manifest_unknown(host, name):
    # Distribution 2.8.2 differs: 400 DIGEST_INVALID for every tag delete.
    oci.push_image(host, name, "v1")
    oci.assert_error(call(host, "DELETE", f"/v2/{name}/manifests/nope"), 404, "MANIFEST_UNKNOWN")


def test_deleting_an_unknown_manifest_is_404_manifest_unknown(host, name):
    oci.push_image(host, name, "v1")
    d = oci.digest(b"no such manifest")
    oci.assert_error(call(host, "DELETE", f"/v2/{name}/manifests/{d}"), 404, "MANIFEST_UNKNOWN")
    oci.assert_error(call(host, "DELETE", f"/v2/{oci.unique_name('none')}/manifests/{d}"),
                     404, "MANIFEST_UNKNOWN")


def test_deleting_a_blob_makes_it_unknown_to_the_repository(host, name):
    d = oci.push_blob(host, name, b"delete me")
    r = call(host, "DELETE", f"/v2/{name}/blobs/{d}")
    assert r.status == 202, r
    r = call(host, "HEAD", f"/v2/{name}/blobs/{d}")
    assert r.status == 404 and r.body == b"", r
    oci.assert_error(call(host, "GET", f"/v2/{name}/blobs/{d}"), 404, "BLOB_UNKNOWN")
    oci.assert_error(call(host, "DELETE", f"/v2/{name}/blobs/{d}"), 404, "BLOB_UNKNOWN")


# =============================================================================
# Names
# =============================================================================

LONG = "/".join(["a" * 50] * 5)  # 254 characters


@pytest.mark.parametrize("bad", [
    "Upper", "a/Upper", "a..b", "a//b", "/leading", "-dash", "dash-", "a/.b", "a___b",
    "a/../b", "..", LONG + "bc"], ids=lambda s: s if len(s) < 20 else f"{len(s)}-chars")
def test_invalid_repository_names_are_400_name_invalid(host, bad):
    # Distribution 2.8.2 differs: its router answers a plain-text 404, a 301 redirect
    # (a//b, a/../b, /leading) or 500 (more than 255 characters); v3's router too.
    for method, path in [("GET", f"/v2/{bad}/tags/list"),
                         ("POST", f"/v2/{bad}/blobs/uploads/"),
                         ("GET", f"/v2/{bad}/manifests/latest"),
                         ("GET", f"/v2/{bad}/blobs/{oci.digest(b'x')}")]:
        oci.assert_error(call(host, method, path), 400, "NAME_INVALID")


def test_the_longest_valid_name_is_accepted(host):
    name = LONG + "b"
    assert len(name) == 255
    oci.assert_error(call(host, "GET", f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")
    d = oci.push_blob(host, name, b"long name")
    assert call(host, "GET", f"/v2/{name}/blobs/{d}").status == 200


# =============================================================================
# Referrers
# =============================================================================

SBOM = "application/vnd.ringtest.sbom.v1"
SIG_CONFIG = "application/vnd.ringtest.signature.config.v1"


def _referrers_fixture(host, name):
    subject = oci.push_image(host, name, "v1")
    oci.push_blob(host, name, oci.EMPTY_JSON)
    empty = oci.descriptor(oci.OCI_EMPTY, oci.EMPTY_JSON)
    payload = b"an sbom payload"
    oci.push_blob(host, name, payload)
    sbom = oci.image_manifest(empty, [oci.descriptor(SBOM, payload)],
                              artifact_type=SBOM, subject=subject.descriptor,
                              annotations={"org.ringtest.kind": "sbom"})
    sig_cfg = b'{"signature": true}'
    oci.push_blob(host, name, sig_cfg)
    sig = oci.image_manifest(oci.descriptor(SIG_CONFIG, sig_cfg), [empty],
                             subject=subject.descriptor,
                             annotations={"org.ringtest.kind": "sig", "n": "2"})
    for body in (sbom, sig):
        r = oci.put_manifest(host, name, oci.digest(body), body, oci.OCI_MANIFEST)
        assert r.status == 201, r
    idx = oci.image_index([oci.descriptor(oci.OCI_MANIFEST, sbom)], subject=subject.descriptor,
                          annotations={"org.ringtest.kind": "index"})
    r = oci.put_manifest(host, name, oci.digest(idx), idx, oci.OCI_INDEX)
    assert r.status == 201, r
    return subject, sbom, sig, idx


def _referrers(host, name, d, query=""):
    r = call(host, "GET", f"/v2/{name}/referrers/{d}{query}")
    assert r.status == 200, r
    assert r.header("Content-Type") == oci.OCI_INDEX, r
    doc = json.loads(r.body)
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == oci.OCI_INDEX, doc
    return r, {m["digest"]: m for m in doc["manifests"]}


def test_referrers_list_descriptors_with_artifact_type_and_annotations(host, name):
    # Distribution 2.8.2 differs: no referrers API (plain-text 404).
    subject, sbom, sig, idx = _referrers_fixture(host, name)
    r, found = _referrers(host, name, subject.digest)
    assert set(found) == {oci.digest(sbom), oci.digest(sig), oci.digest(idx)}, r
    assert r.header("OCI-Filters-Applied") is None, r
    assert found[oci.digest(sbom)] == {
        "mediaType": oci.OCI_MANIFEST, "digest": oci.digest(sbom), "size": len(sbom),
        "artifactType": SBOM, "annotations": {"org.ringtest.kind": "sbom"}}
    # no artifactType: the config media type stands in
    assert found[oci.digest(sig)]["artifactType"] == SIG_CONFIG
    assert found[oci.digest(sig)]["annotations"] == {"org.ringtest.kind": "sig", "n": "2"}
    # an index without artifactType has none
    assert found[oci.digest(idx)]["mediaType"] == oci.OCI_INDEX
    assert found[oci.digest(idx)]["size"] == len(idx)
    assert "artifactType" not in found[oci.digest(idx)]
    assert found[oci.digest(idx)]["annotations"] == {"org.ringtest.kind": "index"}


def test_referrers_filter_by_artifact_type_and_say_so(host, name):
    # Distribution 2.8.2 differs: no referrers API.
    subject, sbom, _, _ = _referrers_fixture(host, name)
    r, found = _referrers(host, name, subject.digest, f"?artifactType={SBOM}")
    assert list(found) == [oci.digest(sbom)], r
    assert r.header("OCI-Filters-Applied") == "artifactType", r
    r, found = _referrers(host, name, subject.digest, "?artifactType=application/vnd.none")
    assert found == {} and r.header("OCI-Filters-Applied") == "artifactType", r


def test_referrers_of_an_unknown_subject_or_repository_are_an_empty_index(host, name):
    # Distribution 2.8.2 differs: no referrers API.
    oci.push_image(host, name, "v1")
    _, found = _referrers(host, name, oci.digest(b"no subject"))
    assert found == {}
    _, found = _referrers(host, oci.unique_name("none"), oci.digest(b"no subject"))
    assert found == {}


@pytest.mark.parametrize("ref", ["sha256:abc", "latest", "md5:" + "0" * 32])
def test_referrers_with_a_malformed_digest_are_400_digest_invalid(host, name, ref):
    # Distribution 2.8.2 differs: no referrers API.
    oci.push_image(host, name, "v1")
    oci.assert_error(call(host, "GET", f"/v2/{name}/referrers/{ref}"), 400, "DIGEST_INVALID")


def test_a_deleted_referrer_leaves_the_referrers_list(host, name):
    # Distribution 2.8.2 differs: no referrers API.
    subject, sbom, sig, idx = _referrers_fixture(host, name)
    r = call(host, "DELETE", f"/v2/{name}/manifests/{oci.digest(sbom)}")
    assert r.status == 202, r
    _, found = _referrers(host, name, subject.digest)
    assert set(found) == {oci.digest(sig), oci.digest(idx)}


# =============================================================================
# Health
# =============================================================================

def test_healthz_answers_200(host):
    # Distribution 2.8.2 differs: no /healthz (it has /debug/health on a debug port).
    r = call(host, "GET", "/healthz")
    assert r.status == 200, r
    assert r.header("Docker-Distribution-Api-Version") == oci.API_VERSION, r


def test_readyz_answers_200_once_the_index_is_loaded(host):
    # Distribution 2.8.2 differs: no /readyz.
    deadline = time.monotonic() + 20
    r = call(host, "GET", "/readyz")
    while r.status == 503 and time.monotonic() < deadline:
        time.sleep(0.05)
        r = call(host, "GET", "/readyz")
    assert r.status == 200, r
