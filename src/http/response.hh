// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/request.hh"
#include "reactor/task.hh"
#include "util/result.hh"

namespace rp::http {

// What a handler answers. The body is either `body` (small, in memory) or a
// byte range of an open file (`file_fd`, borrowed: the handler keeps it open
// until respond() returned), sent with splice.
// A file still being written while it is sent (a blob a mirror is fetching):
// before each piece the connection asks how far the file is ready. The
// Content-Length is announced up front, so a body that cannot be finished
// (the writer failed) is cut short by closing the connection.
class GrowingFile {
  public:
    // Waits until the file holds bytes past `offset`; returns the end of what
    // may be sent now (above `offset`), or an error when no more will come.
    virtual reactor::Task<util::Result<std::uint64_t>>
    ready_past(std::uint64_t offset) noexcept = 0;

  protected:
    ~GrowingFile() = default;
};

struct Response {
    int status = 200;
    std::vector<Header> headers;
    std::string body;
    int file_fd = -1;
    std::uint64_t file_offset = 0;
    std::uint64_t file_length = 0;
    GrowingFile* growing = nullptr; // borrowed like file_fd; null: the file is whole
    // For HEAD: the Content-Length to announce when there is no body to send.
    std::optional<std::uint64_t> content_length;
    bool omit_body = false; // HEAD, 204, 304

    void add(std::string name, std::string value) {
        headers.push_back(Header{std::move(name), std::move(value)});
    }
    std::string_view header(std::string_view name) const noexcept;
};

const char* status_reason(int status) noexcept;

// Renders the status line and headers (with Content-Length, Date and
// Connection as needed), ending with the blank line.
std::string render_head(const Response& r, bool keep_alive, bool http10, std::string_view date);

} // namespace rp::http
