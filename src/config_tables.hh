// SPDX-License-Identifier: Apache-2.0
// The config file's tables of tables, parsed; config.cc reads the file and
// places them: [[mirror]], [[retention.policy]], [[access]] with [groups],
// and [notifications]' endpoints and events (Distribution's key names and
// durations).
#pragma once

#include <toml++/toml.h>

#include <string>
#include <string_view>

#include "config.hh"

namespace rp::config_tables {

// One [[mirror]] table. Keys are checked here; how the tables fit together
// is mirror::validate's.
util::Result<mirror::Upstream> parse_mirror(const toml::table& t, const std::string& where);

// One [[retention.policy]] table.
util::Result<storage::RetentionPolicy> parse_policy(const toml::table& t, const std::string& where);

// The [notifications] table's own tables: [[notifications.endpoints]] and
// [notifications.events]. False when `key` is neither.
util::Result<bool> apply_notifications(Config& cfg, std::string_view key, const toml::node& value);

// The [[access]] array or the [groups] table (`section` names which) of the
// config file at `path`.
util::Result<void> apply_access(Config& cfg, const std::string& path, std::string_view section,
                                const toml::node& node);

} // namespace rp::config_tables
