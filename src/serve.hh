// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "config.hh"

namespace rp {
// Runs the registry until SIGTERM or SIGINT; returns the process exit code.
int serve_main(const Config& cfg);
} // namespace rp
