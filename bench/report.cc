// SPDX-License-Identifier: Apache-2.0
#include "report.hh"

#include <simdjson.h>

#include <charconv>

#include "json_writer.hh"

namespace rp::bench {

using util::Errc;
using util::Error;
using util::Result;

namespace {

void write_scalar(JsonWriter& w, const Scalar& v) {
    if (const auto* b = std::get_if<bool>(&v)) {
        w.value(*b);
    } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
        w.value(*i);
    } else if (const auto* d = std::get_if<double>(&v)) {
        w.value(*d);
    } else {
        w.value(std::get<std::string>(v));
    }
}

void write_fields(JsonWriter& w, std::string_view name, const std::vector<Field>& fields) {
    w.key(name).begin_object();
    for (const Field& f : fields) {
        w.key(f.key);
        write_scalar(w, f.value);
    }
    w.end_object();
}

void write_results(JsonWriter& w, const RunReport& r) {
    w.key("results").begin_object();
    w.key("ops").value(r.ops).key("errors").value(r.errors).key("bytes").value(r.bytes);
    w.key("seconds").value(r.seconds).key("ops_per_s").value(r.ops_per_s);
    w.key("bytes_per_s").value(r.bytes_per_s);
    w.key("latency_us").begin_object();
    w.key("p50").value(r.p50_us).key("p90").value(r.p90_us);
    w.key("p99").value(r.p99_us).key("max").value(r.max_us);
    w.end_object();
    w.key("client_cpu_us_per_op").value(r.client_cpu_us_per_op);
    w.key("client_cpu_ns_per_byte").value(r.client_cpu_ns_per_byte);
    w.key("verify_cpu_ns_per_byte").value(r.verify_cpu_ns_per_byte);
    w.key("error_samples").begin_array();
    for (const std::string& s : r.error_samples) {
        w.value(s);
    }
    w.end_array();
    w.end_object();
}

void write_server(JsonWriter& w, const std::optional<ServerReport>& s) {
    w.key("server");
    if (!s) {
        w.null();
        return;
    }
    w.begin_object();
    w.key("cpu_us_per_op").value(s->cpu_us_per_op);
    w.key("cpu_ns_per_byte").value(s->cpu_ns_per_byte);
    w.key("cpu_s").value(s->cpu_s);
    w.key("threads").begin_array();
    for (const ThreadCpu& t : s->threads) {
        w.begin_object().key("name").value(t.name).key("tid").value(t.tid);
        w.key("cpu_s").value(t.cpu_s).end_object();
    }
    w.end_array();
    w.key("rss_kb").value(s->rss_kb).key("hwm_kb").value(s->hwm_kb);
    w.end_object();
}

} // namespace

std::string to_json(const RunReport& r) {
    JsonWriter w;
    w.begin_object();
    w.key("tool").value("ringport-bench").key("schema").value(std::int64_t{1});
    w.key("label").value(r.label).key("url").value(r.url).key("workload").value(r.workload);
    write_fields(w, "params", r.params);
    write_results(w, r);
    write_server(w, r.server);
    write_fields(w, "extra", r.extra);
    w.end_object();
    return w.finish();
}

namespace {

namespace dom = simdjson::dom;

// A number, or NaN for null / absent.
double number_at(dom::object o, std::string_view key) {
    double d = 0;
    dom::element e;
    if (o[key].get(e) != simdjson::SUCCESS || e.get_double().get(d) != simdjson::SUCCESS) {
        return not_measured;
    }
    return d;
}

std::uint64_t count_at(dom::object o, std::string_view key) {
    double d = number_at(o, key);
    return std::isfinite(d) && d > 0 ? static_cast<std::uint64_t>(d) : 0;
}

std::string string_at(dom::object o, std::string_view key) {
    std::string_view s;
    if (o[key].get_string().get(s) != simdjson::SUCCESS) {
        return {};
    }
    return std::string(s);
}

std::optional<Scalar> scalar_of(dom::element e) {
    switch (e.type()) {
    case dom::element_type::BOOL: return Scalar{e.get_bool().value_unsafe()};
    case dom::element_type::INT64: return Scalar{e.get_int64().value_unsafe()};
    case dom::element_type::UINT64:
        return Scalar{static_cast<double>(e.get_uint64().value_unsafe())};
    case dom::element_type::DOUBLE: return Scalar{e.get_double().value_unsafe()};
    case dom::element_type::STRING: return Scalar{std::string(e.get_string().value_unsafe())};
    case dom::element_type::NULL_VALUE: return Scalar{not_measured};
    default: return std::nullopt;
    }
}

std::vector<Field> fields_at(dom::object o, std::string_view key) {
    std::vector<Field> out;
    dom::object f;
    if (o[key].get_object().get(f) != simdjson::SUCCESS) {
        return out;
    }
    for (auto [k, v] : f) {
        if (auto s = scalar_of(v)) {
            out.push_back(Field{std::string(k), std::move(*s)});
        }
    }
    return out;
}

void read_results(dom::object res, RunReport& r) {
    r.ops = count_at(res, "ops");
    r.errors = count_at(res, "errors");
    r.bytes = count_at(res, "bytes");
    r.seconds = number_at(res, "seconds");
    r.ops_per_s = number_at(res, "ops_per_s");
    r.bytes_per_s = number_at(res, "bytes_per_s");
    dom::object lat;
    if (res["latency_us"].get_object().get(lat) == simdjson::SUCCESS) {
        r.p50_us = number_at(lat, "p50");
        r.p90_us = number_at(lat, "p90");
        r.p99_us = number_at(lat, "p99");
        r.max_us = number_at(lat, "max");
    }
    r.client_cpu_us_per_op = number_at(res, "client_cpu_us_per_op");
    r.client_cpu_ns_per_byte = number_at(res, "client_cpu_ns_per_byte");
    r.verify_cpu_ns_per_byte = number_at(res, "verify_cpu_ns_per_byte");
    dom::array samples;
    if (res["error_samples"].get_array().get(samples) == simdjson::SUCCESS) {
        for (dom::element e : samples) {
            std::string_view s;
            if (e.get_string().get(s) == simdjson::SUCCESS) {
                r.error_samples.emplace_back(s);
            }
        }
    }
}

ServerReport read_server(dom::object s) {
    ServerReport out;
    out.cpu_us_per_op = number_at(s, "cpu_us_per_op");
    out.cpu_ns_per_byte = number_at(s, "cpu_ns_per_byte");
    out.cpu_s = number_at(s, "cpu_s");
    out.rss_kb = number_at(s, "rss_kb");
    out.hwm_kb = number_at(s, "hwm_kb");
    dom::array threads;
    if (s["threads"].get_array().get(threads) == simdjson::SUCCESS) {
        for (dom::element e : threads) {
            dom::object t;
            if (e.get_object().get(t) == simdjson::SUCCESS) {
                double tid = number_at(t, "tid");
                out.threads.push_back(ThreadCpu{
                    string_at(t, "name"), std::isfinite(tid) ? static_cast<std::int64_t>(tid) : 0,
                    number_at(t, "cpu_s")});
            }
        }
    }
    return out;
}

} // namespace

Result<RunReport> parse_report(std::string_view json) {
    dom::parser parser;
    dom::element doc;
    if (auto err = parser.parse(json.data(), json.size()).get(doc); err) {
        return Error::of(Errc::invalid, std::string("not JSON: ") + simdjson::error_message(err));
    }
    dom::object top;
    if (doc.get_object().get(top) != simdjson::SUCCESS ||
        string_at(top, "tool") != "ringport-bench") {
        return Error::of(Errc::invalid, "not a ringport-bench report");
    }
    if (number_at(top, "schema") != 1) {
        return Error::of(Errc::unsupported, "unknown report schema (want 1)");
    }
    RunReport r;
    r.label = string_at(top, "label");
    r.url = string_at(top, "url");
    r.workload = string_at(top, "workload");
    r.params = fields_at(top, "params");
    r.extra = fields_at(top, "extra");
    dom::object res;
    if (top["results"].get_object().get(res) != simdjson::SUCCESS) {
        return Error::of(Errc::invalid, "report has no results");
    }
    read_results(res, r);
    dom::object server;
    if (top["server"].get_object().get(server) == simdjson::SUCCESS) {
        r.server = read_server(server);
    }
    return r;
}

const Scalar* find_field(const std::vector<Field>& fields, std::string_view key) {
    for (const Field& f : fields) {
        if (f.key == key) {
            return &f.value;
        }
    }
    return nullptr;
}

std::string scalar_text(const Scalar& v) {
    if (const auto* b = std::get_if<bool>(&v)) {
        return *b ? "true" : "false";
    }
    if (const auto* i = std::get_if<std::int64_t>(&v)) {
        return std::to_string(*i);
    }
    if (const auto* d = std::get_if<double>(&v)) {
        if (!std::isfinite(*d)) {
            return "-";
        }
        char buf[32];
        auto res = std::to_chars(buf, buf + sizeof buf, *d, std::chars_format::general, 6);
        return std::string(buf, res.ptr);
    }
    return std::get<std::string>(v);
}

} // namespace rp::bench
