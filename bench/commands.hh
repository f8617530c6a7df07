// SPDX-License-Identifier: Apache-2.0
#pragma once

// The subcommands besides `run` (which lives in main.cc). Arguments exclude
// the program and subcommand names; the return value is the exit status.

#include <functional>
#include <string>
#include <vector>

#include "util/unique_fd.hh"

namespace rp::bench {

int cmd_compare(const std::vector<std::string>& args);
int cmd_sendfile_server(const std::vector<std::string>& args);
int cmd_webhook_sink(const std::vector<std::string>& args);

// A listening TCP socket on "HOST:PORT" (":PORT" is every IPv4 address; port
// 0 picks one), its address as bound in `bound`; -1 on failure.
int listen_on(const std::string& addr, std::string& bound);
// Listens on `listen`, prints "listening on HOST:PORT", and hands each
// connection accepted to `on_connection`, until accept fails for good (1).
// `who` names the command in its error messages.
int serve_forever(const std::string& listen, const char* who,
                  const std::function<void(util::UniqueFd)>& on_connection);

} // namespace rp::bench
