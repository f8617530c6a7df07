// SPDX-License-Identifier: Apache-2.0
#pragma once

// A JSON document written front to back, for the /ringport/v1/ endpoints:
// keys are the program's own literals, string values are escaped.
//   Json j; j.num("runs", 3).str("phase", "done").open("counts").num("a", 1).close();
//   std::string body = j.done(); // {"runs":3,"phase":"done","counts":{"a":1}}

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "util/strings.hh"

namespace rp::registry {

class Json {
  public:
    Json& num(std::string_view k, std::uint64_t v) { return raw(k, std::to_string(v)); }
    Json& num(std::string_view k, std::int64_t v) { return raw(k, std::to_string(v)); }
    Json& boolean(std::string_view k, bool v) { return raw(k, v ? "true" : "false"); }
    Json& null(std::string_view k) { return raw(k, "null"); }
    // Seconds since the epoch as RFC 3339 UTC ("2026-12-05T13:52:27Z"); 0 is null (never).
    Json& time(std::string_view k, std::int64_t unix_s) {
        if (unix_s <= 0) {
            return null(k);
        }
        std::tm tm{};
        const std::time_t t = unix_s;
        char buf[32];
        const std::size_t n = ::gmtime_r(&t, &tm) != nullptr
                                  ? std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm)
                                  : 0;
        return n == 0 ? null(k) : str(k, std::string_view(buf, n));
    }
    Json& str(std::string_view k, std::string_view v) {
        key(k);
        quoted(v);
        return *this;
    }
    // A nested object or array under `k` (an empty `k` inside an array).
    Json& open(std::string_view k = {}) { return begin(k, '{'); }
    Json& open_array(std::string_view k) { return begin(k, '['); }
    Json& close() { return end('}'); }
    Json& close_array() { return end(']'); }
    // The document, closed, with a final newline.
    std::string done() {
        out_ += "}\n";
        return std::move(out_);
    }

  private:
    Json& raw(std::string_view k, std::string_view v) {
        key(k);
        out_ += v;
        return *this;
    }
    void key(std::string_view k) {
        if (!first_) {
            out_ += ',';
        }
        first_ = false;
        if (!k.empty()) {
            quoted(k);
            out_ += ':';
        }
    }
    void quoted(std::string_view v) {
        out_ += '"';
        util::json_escape(out_, v);
        out_ += '"';
    }
    Json& begin(std::string_view k, char c) {
        key(k);
        out_ += c;
        first_ = true;
        return *this;
    }
    Json& end(char c) {
        out_ += c;
        first_ = false;
        return *this;
    }

    std::string out_ = "{";
    bool first_ = true;
};

} // namespace rp::registry
