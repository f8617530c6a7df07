// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

#include "config.hh"
#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp {
// Runs the registry until SIGTERM or SIGINT; returns the process exit code.
int serve_main(const Config& cfg);
// Opens <root>/docker/registry/v2, made if absent.
util::Result<int> open_v2(const std::string& root);
// The root's lock (one server, or one offline run, per root): Errc::busy
// when another process holds it.
util::Result<util::UniqueFd> lock_root(const std::string& root);
// `ringport garbage-collect ...`: argv from the command on.
int gc_main(int argc, char** argv, const std::map<std::string, std::string>& env);
// `ringport check [--repair] ...`.
int check_main(int argc, char** argv, const std::map<std::string, std::string>& env);
// `ringport delete-repository NAME ...`.
int delete_repository_main(int argc, char** argv, const std::map<std::string, std::string>& env);
} // namespace rp
