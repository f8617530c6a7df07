// SPDX-License-Identifier: Apache-2.0
#include "procstat.hh"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "util/strings.hh"

namespace rp::bench {

namespace {

std::optional<std::string> read_text(const std::string& path) {
    std::ifstream f(path);
    if (!f) {
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string first_line(std::string s) {
    std::size_t nl = s.find('\n');
    if (nl != std::string::npos) {
        s.resize(nl);
    }
    return s;
}

std::vector<int> numeric_entries(const std::string& dir) {
    std::vector<int> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        if (auto n = util::parse_u64(e->d_name)) {
            out.push_back(static_cast<int>(*n));
        }
    }
    (void)::closedir(d);
    return out;
}

} // namespace

double seconds_per_tick() {
    static const double s = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
    return s;
}

std::optional<std::uint64_t> stat_ticks(const std::string& line) {
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so
    // count fields after the last ')'. utime and stime are fields 14 and 15.
    std::size_t close = line.rfind(')');
    if (close == std::string::npos) {
        return std::nullopt;
    }
    std::istringstream ss(line.substr(close + 1));
    std::string field;
    std::uint64_t utime = 0;
    std::uint64_t stime = 0;
    for (int i = 3; i <= 15 && ss >> field; ++i) {
        if (i == 14 || i == 15) {
            auto v = util::parse_u64(field);
            if (!v) {
                return std::nullopt;
            }
            (i == 14 ? utime : stime) = *v;
        }
    }
    if (!ss) {
        return std::nullopt;
    }
    return utime + stime;
}

std::optional<ProcSample> sample_proc(int pid) {
    std::string base = "/proc/" + std::to_string(pid);
    auto stat = read_text(base + "/stat");
    if (!stat) {
        return std::nullopt;
    }
    auto total = stat_ticks(*stat);
    if (!total) {
        return std::nullopt;
    }
    ProcSample s;
    s.ticks = *total;
    for (int tid : numeric_entries(base + "/task")) {
        std::string tbase = base + "/task/" + std::to_string(tid);
        auto tstat = read_text(tbase + "/stat");
        auto comm = read_text(tbase + "/comm");
        auto ticks = tstat ? stat_ticks(*tstat) : std::nullopt;
        if (ticks) {
            s.threads.push_back(ThreadTicks{tid, comm ? first_line(*comm) : "?", *ticks});
        }
    }
    return s;
}

std::optional<ProcMemory> proc_memory(int pid) {
    auto status = read_text("/proc/" + std::to_string(pid) + "/status");
    if (!status) {
        return std::nullopt;
    }
    ProcMemory m;
    std::istringstream ss(*status);
    std::string line;
    while (std::getline(ss, line)) {
        std::istringstream ls(line);
        std::string key;
        std::uint64_t kb = 0;
        if (!(ls >> key >> kb)) {
            continue;
        }
        if (key == "VmRSS:") {
            m.rss_kb = kb;
        } else if (key == "VmHWM:") {
            m.hwm_kb = kb;
        }
    }
    return m;
}

void ProcCpuDelta::add(const ProcSample& before, const ProcSample& after) {
    ticks_ += after.ticks >= before.ticks ? after.ticks - before.ticks : 0;
    for (const ThreadTicks& t : after.threads) {
        std::uint64_t was = 0;
        for (const ThreadTicks& b : before.threads) {
            if (b.tid == t.tid) {
                was = b.ticks;
                break;
            }
        }
        Thread& out = threads_[t.tid];
        out.name = t.name;
        out.cpu_s += static_cast<double>(t.ticks >= was ? t.ticks - was : 0) * seconds_per_tick();
    }
}

int follow_shell(int pid) {
    auto comm = read_text("/proc/" + std::to_string(pid) + "/comm");
    if (!comm) {
        return pid;
    }
    std::string name = first_line(*comm);
    if (name != "sh" && name != "dash" && name != "bash") {
        return pid;
    }
    std::string path =
        "/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children";
    auto children = read_text(path);
    std::istringstream ss(children.value_or(""));
    int child = 0;
    int extra = 0;
    if (!(ss >> child) || (ss >> extra)) {
        return pid;
    }
    return child;
}

} // namespace rp::bench
