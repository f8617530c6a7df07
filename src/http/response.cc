// SPDX-License-Identifier: Apache-2.0
#include "http/response.hh"

#include "util/strings.hh"

namespace rp::http {

std::string_view Response::header(std::string_view name) const noexcept {
    for (const Header& h : headers) {
        if (util::iequals(h.name, name)) {
            return h.value;
        }
    }
    return {};
}

const char* status_reason(int status) noexcept {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

std::string render_head(const Response& r, bool keep_alive, bool http10, std::string_view date) {
    std::string out;
    out.reserve(256);
    out += http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += std::to_string(r.status);
    out += ' ';
    out += status_reason(r.status);
    out += "\r\n";
    for (const Header& h : r.headers) {
        out += h.name;
        out += ": ";
        // A value never ends the line early, whatever went into it (a
        // repository name in a challenge, say): CR and LF become spaces.
        for (char c : h.value) {
            out += c == '\r' || c == '\n' ? ' ' : c;
        }
        out += "\r\n";
    }
    bool no_length = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
    if (!no_length) {
        std::uint64_t len = r.file_fd >= 0 ? r.file_length : r.body.size();
        if (r.content_length) {
            len = *r.content_length;
        }
        out += "Content-Length: ";
        out += std::to_string(len);
        out += "\r\n";
    }
    if (!date.empty()) {
        out += "Date: ";
        out += date;
        out += "\r\n";
    }
    if (!keep_alive) {
        out += "Connection: close\r\n";
    } else if (http10) {
        out += "Connection: keep-alive\r\n";
    }
    out += "\r\n";
    return out;
}

} // namespace rp::http
