// dstm-supervise: runs the appliance's daemons and keeps them running (docs/firmware.md,
// "The supervisor"). Started once by /init:
//
//   dstm-supervise [--status FILE] [--log-dir DIR] SERVICES CONFIG
//
// SERVICES has one line per daemon: "NAME SECTION COMMAND [ARG...]", '#' starts a comment.
// SECTION is the JSON pointer of the part of the config document CONFIG that the daemon reads
// ("/dstm_server"), with optional leading marks: '?' the daemon runs only while that part exists
// ("?/tep/0"); '~' the daemon reloads itself on SIGHUP ("~/dstm_server"). "-" for none.
//
// - Respawn with limits: a daemon that ends is started again after a backoff that doubles from
//   1 s to 30 s while it keeps failing quickly (within 10 s of its start); after 5 such failures
//   in a row it is given up and reported on the console, until its section changes (an operator
//   fixing the config gives it a new chance). A run of 10 s or more resets the count.
// - Restart on config change: the document is looked at every second; a daemon whose section
//   changed (compared by a hash of its serialization) is stopped (SIGTERM, SIGKILL after 10 s)
//   and started again. A daemon marked '~' that has been running for 2 s is sent SIGHUP instead:
//   its reload restarts it inside its process with the new section, and does nothing when the
//   dashboard's apply already reloaded it (the section equal to what runs), so an apply does not
//   cost the daemon a second restart (a TEP its bindings). A document that does not parse
//   changes nothing: the daemons' own reload reports its errors.
// - Each daemon's output goes to DIR/NAME.log (default /var/log, a tmpfs), moved to NAME.log.1
//   when it passes 1 MiB, so a chatty daemon cannot fill the RAM.
// - The status FILE (default /run/dstm-supervise.status) is rewritten on every change: one line per
//   daemon, "NAME STATE PID STARTS", STATE one of running, backoff, stopping, given-up, absent.
// - It is the subreaper of everything it starts, and stops them all on SIGTERM or SIGINT.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto kQuickFailure = 10s;
constexpr int kGiveUpAfter = 5;
constexpr auto kFirstBackoff = 1s;
constexpr auto kMaxBackoff = 30s;
constexpr auto kStopTimeout = 10s;
constexpr auto kTick = 200ms;
constexpr auto kConfigPoll = 1s;
// A daemon younger than this may not have its SIGHUP handler yet (SIGHUP's default ends it).
constexpr auto kHupAfter = 2s;
constexpr off_t kMaxLog = 1 << 20;

volatile sig_atomic_t g_stop = 0;
void on_stop(int) {
  g_stop = 1;
}

enum class State { Absent, Backoff, Running, Stopping, GivenUp };
const char* to_string(State s) {
  switch (s) {
    case State::Absent:
      return "absent";
    case State::Backoff:
      return "backoff";
    case State::Running:
      return "running";
    case State::Stopping:
      return "stopping";
    case State::GivenUp:
      return "given-up";
  }
  return "?";
}

struct Service {
  std::string name;
  std::string section;  // JSON pointer, empty for none
  bool optional = false;
  bool reloads_on_hup = false;
  std::vector<std::string> argv;

  State state = State::Backoff;
  pid_t pid = 0;
  int starts = 0;
  int quick_failures = 0;
  Clock::time_point started{};
  Clock::time_point next_start{};  // when in Backoff
  Clock::time_point kill_at{};     // when in Stopping
  bool start_after_stop = false;
  std::optional<std::size_t> hash;  // of the section; nullopt when absent
};

void say(const std::string& line) {
  std::cout << "supervise: " << line << std::endl;
}

std::vector<Service> read_services(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<Service> out;
  std::string line;
  while (std::getline(in, line)) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    Service s;
    std::string section;
    if (!(words >> s.name)) continue;
    if (!(words >> section)) throw std::runtime_error(path + ": " + s.name + " has no section");
    if (section != "-") {
      for (; !section.empty() && (section[0] == '?' || section[0] == '~'); section.erase(0, 1))
        (section[0] == '?' ? s.optional : s.reloads_on_hup) = true;
      if (section.empty()) throw std::runtime_error(path + ": " + s.name + " has no section");
      s.section = section;
    }
    for (std::string w; words >> w;) s.argv.push_back(w);
    if (s.argv.empty()) throw std::runtime_error(path + ": " + s.name + " has no command");
    out.push_back(std::move(s));
  }
  return out;
}

// The hashes of every service's section, or nullopt if the document cannot be read or parsed.
std::optional<std::vector<std::optional<std::size_t>>> section_hashes(
    const std::string& config, const std::vector<Service>& services) {
  std::ifstream in(config, std::ios::binary);
  if (!in) return std::nullopt;
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  boost::system::error_code ec;
  const auto doc = json::parse(text, ec);
  if (ec) return std::nullopt;
  std::vector<std::optional<std::size_t>> out;
  for (const auto& s : services) {
    if (s.section.empty()) {
      out.emplace_back(0);
      continue;
    }
    const auto* v = doc.find_pointer(s.section, ec);
    if (!v)
      out.emplace_back(std::nullopt);
    else
      out.emplace_back(std::hash<std::string>{}(json::serialize(*v)));
  }
  return out;
}

std::string g_log_dir = "/var/log";

std::string log_path(const Service& s) {
  return g_log_dir + "/" + s.name + ".log";
}

void start(Service& s) {
  const int log = ::open(log_path(s).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  const pid_t pid = ::fork();
  if (pid < 0) {
    say(s.name + ": fork failed: " + std::strerror(errno));
    if (log >= 0) ::close(log);
    s.state = State::Backoff;
    s.next_start = Clock::now() + kMaxBackoff;
    return;
  }
  if (pid == 0) {
    ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    std::vector<char*> argv;
    for (auto& a : s.argv) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "dstm-supervise: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  if (log >= 0) ::close(log);
  s.pid = pid;
  s.state = State::Running;
  s.started = Clock::now();
  ++s.starts;
  say(s.name + ": started (pid " + std::to_string(pid) + ")");
}

void stop(Service& s, bool start_again) {
  if (s.state != State::Running) {
    if (s.state != State::Stopping) s.state = start_again ? State::Backoff : State::Absent;
    s.next_start = Clock::now();
    s.start_after_stop = start_again;
    return;
  }
  ::kill(-s.pid, SIGTERM);  // its process group: the daemon and anything it started
  s.state = State::Stopping;
  s.kill_at = Clock::now() + kStopTimeout;
  s.start_after_stop = start_again;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended";
}

void ended(Service& s, int status) {
  s.pid = 0;
  const auto now = Clock::now();
  if (s.state == State::Stopping) {
    say(s.name + ": stopped");
    s.quick_failures = 0;
    s.state = s.start_after_stop ? State::Backoff : State::Absent;
    s.next_start = now;
    return;
  }
  if (now - s.started >= kQuickFailure)
    s.quick_failures = 1;
  else
    ++s.quick_failures;
  if (s.quick_failures >= kGiveUpAfter) {
    s.state = State::GivenUp;
    say(s.name + ": " + describe(status) + "; failed " + std::to_string(s.quick_failures) +
        " times in a row within " + std::to_string(kQuickFailure.count()) +
        " s of starting: given up until its config section changes (log " + log_path(s) + ")");
    return;
  }
  auto backoff = kFirstBackoff * (1 << (s.quick_failures - 1));
  backoff = std::min<decltype(backoff)>(backoff, kMaxBackoff);
  s.state = State::Backoff;
  s.next_start = now + backoff;
  say(s.name + ": " + describe(status) + "; starting again in " +
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(backoff).count()) + " s");
}

void write_status(const std::string& path, const std::vector<Service>& services) {
  std::ostringstream out;
  for (const auto& s : services)
    out << s.name << ' ' << to_string(s.state) << ' ' << s.pid << ' ' << s.starts << '\n';
  const auto tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << out.str();
  }
  std::rename(tmp.c_str(), path.c_str());
}

void trim_log(const Service& s) {
  struct stat st {};
  const auto path = log_path(s);
  if (::stat(path.c_str(), &st) != 0 || st.st_size <= kMaxLog) return;
  // The daemon writes with O_APPEND, so after the truncation it continues at the new end.
  std::rename(path.c_str(), (path + ".1").c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
  if (fd >= 0) ::close(fd);
}

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  bool operator==(const FileId& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec;
  }
};

std::optional<FileId> file_id(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string status_path = "/run/dstm-supervise.status";
  while (args.size() > 2 && args.size() % 2 == 0) {
    if (args[0] == "--status")
      status_path = args[1];
    else if (args[0] == "--log-dir")
      g_log_dir = args[1];
    else
      break;
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.size() != 2) {
    std::cerr << "usage: dstm-supervise [--status FILE] [--log-dir DIR] SERVICES CONFIG\n";
    return 2;
  }
  const std::string config = args[1];
  std::vector<Service> services;
  try {
    services = read_services(args[0]);
  } catch (const std::exception& e) {
    std::cerr << "dstm-supervise: " << e.what() << "\n";
    return 2;
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  // First look: services with an absent optional section do not start.
  if (auto hashes = section_hashes(config, services)) {
    for (std::size_t i = 0; i < services.size(); ++i) {
      services[i].hash = (*hashes)[i];
      if (services[i].optional && !services[i].hash) services[i].state = State::Absent;
    }
  } else {
    say("cannot read " + config + "; starting every service (they report the document's errors)");
  }
  auto seen = file_id(config);
  auto next_poll = Clock::now() + kConfigPoll;
  bool stopping_all = false;
  std::string last_status;

  for (;;) {
    const auto now = Clock::now();
    // Reap everything: our daemons, and orphans that were reparented to us as subreaper.
    for (int status = 0;;) {
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (auto& s : services)
        if (s.pid == pid) ended(s, status);
    }

    if (g_stop && !stopping_all) {
      stopping_all = true;
      say("stopping every service");
      for (auto& s : services) stop(s, false);
    }
    if (stopping_all &&
        std::none_of(services.begin(), services.end(), [](const Service& s) { return s.pid; }))
      break;

    if (!stopping_all && now >= next_poll) {
      next_poll = now + kConfigPoll;
      const auto id = file_id(config);
      if (id != seen) {
        seen = id;
        if (auto hashes = section_hashes(config, services)) {
          for (std::size_t i = 0; i < services.size(); ++i) {
            auto& s = services[i];
            const auto& h = (*hashes)[i];
            if (h == s.hash) continue;
            s.hash = h;
            s.quick_failures = 0;
            if (s.optional && !h) {
              say(s.name + ": its section " + s.section + " is gone; stopping it");
              stop(s, false);
            } else if (s.reloads_on_hup && s.state == State::Running && s.pid &&
                       now - s.started >= kHupAfter) {
              say(s.name + ": its section " + s.section + " changed; asking it to reload (SIGHUP)");
              ::kill(s.pid, SIGHUP);
            } else {
              say(s.name + ": its section " + s.section + " changed; restarting it");
              stop(s, true);
            }
          }
        }
      }
    }

    for (auto& s : services) {
      if (s.state == State::Backoff && !stopping_all && now >= s.next_start) start(s);
      if (s.state == State::Stopping && s.pid && now >= s.kill_at) {
        say(s.name + ": did not stop within " + std::to_string(kStopTimeout.count()) +
            " s; killing it");
        ::kill(-s.pid, SIGKILL);
        s.kill_at = now + kStopTimeout;
      }
      trim_log(s);
    }

    std::ostringstream status;
    for (const auto& s : services) status << s.name << to_string(s.state) << s.pid << s.starts;
    if (status.str() != last_status) {
      last_status = status.str();
      write_status(status_path, services);
    }
    std::this_thread::sleep_for(kTick);
  }
  say("every service stopped");
  return 0;
}
