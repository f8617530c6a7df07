// SPDX-License-Identifier: Apache-2.0
#include "report.hh"

#include <doctest/doctest.h>

#include "list_flows.hh"

using namespace rp::bench;

TEST_CASE("a report survives writing and reading, nulls included") {
    RunReport r;
    r.label = "ring\"port";
    r.url = "http://127.0.0.1:5000";
    r.workload = "manifest-get";
    r.params = {{"count", std::int64_t{20000}}, {"by", std::string("tag")}};
    r.ops = 20000;
    r.errors = 2;
    r.bytes = 123456789012;
    r.seconds = 0.25;
    r.ops_per_s = 80000;
    r.bytes_per_s = 4.9e11;
    r.p50_us = 12.5;
    r.p90_us = 20;
    r.p99_us = 31.25;
    r.max_us = 400;
    r.client_cpu_us_per_op = 4.75;
    r.client_cpu_ns_per_byte = not_measured;
    r.verify_cpu_ns_per_byte = 0.5;
    r.error_samples = {"GET /v2/x: status 500\n"};
    ServerReport s;
    s.cpu_us_per_op = 9.5;
    s.cpu_s = 0.19;
    s.threads = {{"rp-shard-0", 101, 0.1}, {"rp-shard-1", 102, 0.09}};
    s.rss_kb = 12000;
    s.hwm_kb = 13000;
    r.server = s;
    r.extra = {{"sorted", false}, {"walk_ms", 1.5}, {"upload_mode", std::string("POST + PUT")}};

    std::string json = to_json(r);
    auto back = parse_report(json);
    REQUIRE(back);
    CHECK(back->label == r.label);
    CHECK(back->workload == "manifest-get");
    CHECK(back->ops == 20000);
    CHECK(back->errors == 2);
    CHECK(back->bytes == 123456789012);
    CHECK(back->seconds == 0.25);
    CHECK(back->p99_us == 31.25);
    CHECK(std::isnan(back->client_cpu_ns_per_byte));
    CHECK(back->verify_cpu_ns_per_byte == 0.5);
    REQUIRE(back->error_samples.size() == 1);
    CHECK(back->error_samples[0] == r.error_samples[0]);
    REQUIRE(back->server);
    CHECK(back->server->cpu_us_per_op == 9.5);
    CHECK(std::isnan(back->server->cpu_ns_per_byte));
    REQUIRE(back->server->threads.size() == 2);
    CHECK(back->server->threads[1].name == "rp-shard-1");
    CHECK(back->server->threads[1].tid == 102);
    CHECK(back->server->hwm_kb == 13000);
    REQUIRE(back->params.size() == 2);
    CHECK(std::get<std::int64_t>(back->params[0].value) == 20000);
    CHECK(std::get<std::string>(*find_field(back->params, "by")) == "tag");
    CHECK(std::get<bool>(*find_field(back->extra, "sorted")) == false);
    CHECK(std::get<double>(*find_field(back->extra, "walk_ms")) == 1.5);
    CHECK(find_field(back->extra, "missing") == nullptr);
    // The same document again: writing is deterministic.
    CHECK(to_json(*back) == json);
}

TEST_CASE("a report without a server reads back without one; other JSON is refused") {
    RunReport r;
    r.workload = "push";
    auto back = parse_report(to_json(r));
    REQUIRE(back);
    CHECK_FALSE(back->server);
    CHECK_FALSE(parse_report("{\"tool\":\"other\"}"));
    CHECK_FALSE(parse_report("{\"tool\":\"ringport-bench\",\"schema\":2}"));
    CHECK_FALSE(parse_report("not json"));
}

TEST_CASE("name lists parse in place and catalog order is by path component") {
    auto json = make_json_lists();
    std::vector<std::string_view> names;
    std::string body = R"({"name":"x","tags":["b","a"]})";
    body.reserve(body.size() + body_padding_bytes);
    REQUIRE(parse_name_list(*json, body, "tags", names));
    REQUIRE(names.size() == 2);
    CHECK(names[0] == "b");
    std::string null_tags = R"({"name":"x","tags":null})";
    null_tags.reserve(null_tags.size() + body_padding_bytes);
    REQUIRE(parse_name_list(*json, null_tags, "tags", names));
    CHECK(names.empty());
    std::string bad = R"({"tags":[1]})";
    bad.reserve(bad.size() + body_padding_bytes);
    CHECK_FALSE(parse_name_list(*json, bad, "tags", names));
    CHECK(catalog_less("a/b", "a-b"));
    CHECK_FALSE(catalog_less("a-b", "a/b"));
    CHECK(catalog_less("a", "a/b"));
    CHECK(catalog_less("a/b", "a/c"));
}

namespace {

Step list_response(Flow& flow, std::string body, std::string& why) {
    ResponseHead head;
    head.status = 200;
    body.reserve(body.size() + body_padding_bytes);
    Response r;
    r.head = &head;
    r.body = body;
    r.body_bytes = body.size();
    Request req;
    flow.begin(0, req);
    return flow.on_response(r, req, why);
}

} // namespace

TEST_CASE("a tags list must hold every created tag exactly once, in any order") {
    TagsListFlow flow("r", 3);
    std::string why;
    CHECK(list_response(flow, R"({"tags":["latest","t0","t1","t2"]})", why) == Step::done);
    CHECK_FALSE(flow.saw_unsorted());
    CHECK(list_response(flow, R"({"tags":["t2","t0","latest","t1"]})", why) == Step::done);
    CHECK(flow.saw_unsorted());
    CHECK(list_response(flow, R"({"tags":["t0","t1","latest"]})", why) == Step::failed);
    CHECK(why.find("3 tags, want 4") != std::string::npos);
    CHECK(list_response(flow, R"({"tags":["t0","t0","t1","latest"]})", why) == Step::failed);
    CHECK(list_response(flow, R"({"tags":["t00","t1","t2","latest"]})", why) == Step::failed);
    CHECK(list_response(flow, R"({"tags":["t3","t1","t2","latest"]})", why) == Step::failed);
}
