// SPDX-License-Identifier: Apache-2.0
#include "json_writer.hh"

#include <charconv>
#include <cmath>

#include "util/assert.hh"
#include "util/strings.hh"

namespace rp::bench {

void JsonWriter::newline() {
    out_.push_back('\n');
    out_.append(first_.size() * 2, ' ');
}

void JsonWriter::before_value() {
    if (after_key_) {
        after_key_ = false;
        return;
    }
    RP_ASSERT(first_.empty() || !is_object_.back()); // object members need a key
    if (!first_.empty()) {
        if (!first_.back()) {
            out_.push_back(',');
        }
        first_.back() = false;
        newline();
    } else {
        RP_ASSERT(out_.empty()); // one top-level value
    }
}

JsonWriter& JsonWriter::begin_object() {
    before_value();
    out_.push_back('{');
    first_.push_back(true);
    is_object_.push_back(true);
    return *this;
}

JsonWriter& JsonWriter::end_object() {
    RP_ASSERT(!first_.empty() && is_object_.back() && !after_key_);
    bool empty = first_.back();
    first_.pop_back();
    is_object_.pop_back();
    if (!empty) {
        newline();
    }
    out_.push_back('}');
    return *this;
}

JsonWriter& JsonWriter::begin_array() {
    before_value();
    out_.push_back('[');
    first_.push_back(true);
    is_object_.push_back(false);
    return *this;
}

JsonWriter& JsonWriter::end_array() {
    RP_ASSERT(!first_.empty() && !is_object_.back());
    bool empty = first_.back();
    first_.pop_back();
    is_object_.pop_back();
    if (!empty) {
        newline();
    }
    out_.push_back(']');
    return *this;
}

JsonWriter& JsonWriter::key(std::string_view k) {
    RP_ASSERT(!first_.empty() && is_object_.back() && !after_key_);
    if (!first_.back()) {
        out_.push_back(',');
    }
    first_.back() = false;
    newline();
    out_.push_back('"');
    util::json_escape(out_, k);
    out_.append("\": ");
    after_key_ = true;
    return *this;
}

JsonWriter& JsonWriter::value(std::string_view s) {
    before_value();
    out_.push_back('"');
    util::json_escape(out_, s);
    out_.push_back('"');
    return *this;
}

JsonWriter& JsonWriter::value(double d) {
    if (!std::isfinite(d)) {
        return null();
    }
    before_value();
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    out_.append(buf, r.ptr);
    return *this;
}

JsonWriter& JsonWriter::value(std::int64_t i) {
    before_value();
    out_.append(std::to_string(i));
    return *this;
}

JsonWriter& JsonWriter::value(std::uint64_t u) {
    before_value();
    out_.append(std::to_string(u));
    return *this;
}

JsonWriter& JsonWriter::value(bool b) {
    before_value();
    out_.append(b ? "true" : "false");
    return *this;
}

JsonWriter& JsonWriter::null() {
    before_value();
    out_.append("null");
    return *this;
}

std::string JsonWriter::finish() {
    RP_ASSERT(first_.empty() && !after_key_);
    out_.push_back('\n');
    return std::move(out_);
}

} // namespace rp::bench
