// SPDX-License-Identifier: Apache-2.0
#include "util/files.hh"

#include <cerrno>
#include <fstream>
#include <sstream>

namespace rp::util {

Result<std::string> read_whole_file(const std::string& path, std::string_view what) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        return Error::sys(errno, std::string(what) + path);
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

} // namespace rp::util
