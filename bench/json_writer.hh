// SPDX-License-Identifier: Apache-2.0
#pragma once

// A small JSON writer: objects and arrays with two-space indentation, strings
// escaped, non-finite numbers written as null. It asserts well-formedness.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rp::bench {

class JsonWriter {
  public:
    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();
    JsonWriter& key(std::string_view k);
    JsonWriter& value(std::string_view s);
    JsonWriter& value(const char* s) { return value(std::string_view(s)); }
    JsonWriter& value(double d);
    JsonWriter& value(std::int64_t i);
    JsonWriter& value(std::uint64_t u);
    JsonWriter& value(bool b);
    JsonWriter& null();

    // The document; every object and array must be closed.
    std::string finish();

  private:
    void before_value();
    void newline();

    std::string out_;
    std::vector<bool> first_; // per open container: nothing written in it yet
    std::vector<bool> is_object_;
    bool after_key_ = false;
};

} // namespace rp::bench
