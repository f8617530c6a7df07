// SPDX-License-Identifier: Apache-2.0
#pragma once

// Assertions that stay on in release builds (TigerBeetle): a broken invariant
// aborts with its location rather than corrupting a registry.
namespace rp::util {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line) noexcept;
[[noreturn]] void fatal(const char* what, int err) noexcept;
} // namespace rp::util

#define RP_ASSERT(expr)                                                                            \
    ((expr) ? static_cast<void>(0) : ::rp::util::assert_fail(#expr, __FILE__, __LINE__))
