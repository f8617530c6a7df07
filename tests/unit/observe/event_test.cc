// SPDX-License-Identifier: Apache-2.0
#include "observe/event.hh"

#include <doctest/doctest.h>

#include "observe/audit.hh"
#include "util/strings.hh"

using namespace rp::observe;

TEST_CASE("a push event has Distribution's fields, in its order, with its omissions") {
    Event e;
    e.action = Action::push;
    e.media_type = "application/vnd.oci.image.manifest.v1+json";
    e.digest = "sha256:abc";
    e.size = 42;
    e.repository = "team/app";
    e.url_scheme = "http";
    e.url_host = "h:5000";
    e.url_kind = "manifests";
    e.tag = "v1";
    e.request = RequestInfo{"rid", "127.0.0.1:1234", "h:5000", "PUT", "docker/27"};
    e.actor = "alice";
    Source s{"host:5000", "iid"};
    CHECK(event_json(e, "eid", 1'700'000'000'123'000'000, s) ==
          R"({"id":"eid","timestamp":"2023-11-14T22:13:20.123Z","action":"push",)"
          R"("target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":42,)"
          R"("digest":"sha256:abc","length":42,"repository":"team/app",)"
          R"("url":"http://h:5000/v2/team/app/manifests/sha256:abc","tag":"v1"},)"
          R"("request":{"id":"rid","addr":"127.0.0.1:1234","host":"h:5000","method":"PUT",)"
          R"("useragent":"docker/27"},"actor":{"name":"alice"},)"
          R"("source":{"addr":"host:5000","instanceID":"iid"}})");
}

TEST_CASE("a delete by a duty has an empty request and only what it knows") {
    Event e;
    e.action = Action::del;
    e.repository = "r";
    e.tag = "old";
    CHECK(event_json(e, "x", 1'700'000'000'000'000'000, Source{}) ==
          R"({"id":"x","timestamp":"2023-11-14T22:13:20Z","action":"delete",)"
          R"("target":{"repository":"r","tag":"old"},)"
          R"("request":{"id":"","method":"","useragent":""},"actor":{},"source":{}})");
}

TEST_CASE("strings stay valid JSON whatever bytes a header held") {
    std::string out;
    rp::util::json_escape(out, "a\"b\\c\n\x01\x7f ok \xc3\xa9 bad \xff\xc3 end");
    CHECK(out == "a\\\"b\\\\c\\u000a\\u0001\\u007f ok \xc3\xa9 bad \\ufffd\\ufffd end");
    out.clear();
    rp::util::json_escape(out, "\xed\xa0\x80"); // a surrogate is not UTF-8
    CHECK(out == "\\ufffd\\ufffd\\ufffd");
}

TEST_CASE("timestamps drop trailing zeros of the fraction, as Go's RFC3339Nano") {
    CHECK(rfc3339_nano(0) == "1970-01-01T00:00:00Z");
    CHECK(rfc3339_nano(1'500'000'000) == "1970-01-01T00:00:01.5Z");
    CHECK(rfc3339_nano(1'000'000'001) == "1970-01-01T00:00:01.000000001Z");
}

TEST_CASE("an envelope wraps events already in JSON") {
    CHECK(envelope({}) == R"({"events":[]})");
    CHECK(envelope({"{\"a\":1}", "{\"b\":2}"}) == R"({"events":[{"a":1},{"b":2}]})");
}

TEST_CASE("an audit line has who, what, when and the outcome, and omits what is empty") {
    AuditRecord r;
    r.action = "push";
    r.outcome = "ok";
    r.status = 201;
    r.user = "alice";
    r.addr = "127.0.0.1:9";
    r.request_id = "rid";
    r.method = "PUT";
    r.repository = "team/app";
    r.reference = "v1";
    r.digest = "sha256:abc";
    r.size = 7;
    CHECK(audit_line(r, 0) ==
          R"({"time":"1970-01-01T00:00:00Z","action":"push","outcome":"ok","status":201,)"
          R"("user":"alice","addr":"127.0.0.1:9","request_id":"rid","method":"PUT",)"
          R"("repository":"team/app","reference":"v1","digest":"sha256:abc","size":7})"
          "\n");
    AuditRecord d;
    d.action = "gc-delete";
    d.outcome = "ok";
    d.user = "ringport:gc";
    d.detail = "blob\n\"x\"";
    CHECK(audit_line(d, 0) ==
          R"({"time":"1970-01-01T00:00:00Z","action":"gc-delete","outcome":"ok",)"
          R"("user":"ringport:gc","detail":"blob\u000a\"x\""})"
          "\n");
}
