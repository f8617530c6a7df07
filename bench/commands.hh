// SPDX-License-Identifier: Apache-2.0
#pragma once

// The subcommands besides `run` (which lives in main.cc). Arguments exclude
// the program and subcommand names; the return value is the exit status.

#include <string>
#include <vector>

namespace rp::bench {

int cmd_compare(const std::vector<std::string>& args);
int cmd_sendfile_server(const std::vector<std::string>& args);

} // namespace rp::bench
