// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdio>
#include <cstdlib>

// A fuzz property that failed names itself and aborts, so libFuzzer keeps the
// input as a crash file. On in every build, like RP_ASSERT, but it says which
// property broke rather than only the expression.
namespace rp::fuzz {
[[noreturn]] inline void check_fail(const char* what, const char* expr, const char* file,
                                    int line) noexcept {
    std::fprintf(stderr, "%s:%d: property failed: %s (%s)\n", file, line, what, expr);
    std::abort();
}
} // namespace rp::fuzz

#define RP_FUZZ_CHECK(expr, what)                                                                  \
    ((expr) ? static_cast<void>(0) : ::rp::fuzz::check_fail(what, #expr, __FILE__, __LINE__))
