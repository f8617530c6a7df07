// SPDX-License-Identifier: Apache-2.0
#include "util/assert.hh"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rp::util {

void assert_fail(const char* expr, const char* file, int line) noexcept {
    std::fprintf(stderr, "ringport: assertion failed: %s at %s:%d\n", expr, file, line);
    std::abort();
}

void fatal(const char* what, int err) noexcept {
    std::fprintf(stderr, "ringport: fatal: %s: %s\n", what, std::strerror(err < 0 ? -err : err));
    std::abort();
}

} // namespace rp::util
