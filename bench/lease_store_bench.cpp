// Lease store benchmark: durable puts/s with group commit vs one transaction per put, measured
// side by side, and restart time (open + load_all + LeaseTable restore) for N leases.
//
//   bench_lease_store [--count N] [--puts P] [--batch B] [--rounds R] [--dir DIR]
//   bench_lease_store --populate FILE [--count N]
//
// --count   leases in the restart phase (default 1000000; at most 1048573, a /12 minus three)
// --puts    durable puts per mode in the put phase (default 4000)
// --batch   puts per commit in group-commit mode, i.e. requests per event-loop turn (default 64)
// --rounds  the modes alternate in this many rounds, so machine drift hits them alike (default 4)
// --dir     where the files go (default: a fresh directory under $TMPDIR or /tmp, removed after)
// --populate  only write --count leases (valid for a day, TEPs tep-0..tep-3) to FILE: the lease
//             file of the daemon's restart benchmark
//
// Addresses come from 100.64.0.0/12 and 2001:db8::/32 as pure data: nothing is sent.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "dstm_server/lease_table.hpp"
#include "dstm_server/sqlite_lease_store.hpp"

namespace {

namespace fs = std::filesystem;
using dstm_server::Lease;
using dstm_server::LeaseState;
using dstm_server::SqliteLeaseStore;
using Clock = std::chrono::steady_clock;

// 100.64.0.0/12, inside the shared address space of RFC 6598: a realistic DSTM pool that the
// daemon's config accepts (--populate). Nothing is ever sent to these addresses.
constexpr std::uint32_t kBase = 0x64400000u;

struct Args {
  std::uint32_t count = 1'000'000;
  std::uint32_t puts = 4000;
  std::uint32_t batch = 64;
  std::uint32_t rounds = 4;
  std::string dir;
  std::string populate;  // write `count` leases (tep-0..tep-3, valid for a day) here and exit
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_lease_store: %s\nusage: bench_lease_store [--count N] [--puts P] "
               "[--batch B] [--rounds R] [--dir DIR] [--populate FILE]\n",
               why);
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage("missing value");
    const char* value = argv[++i];
    const auto number = [&] {
      char* end = nullptr;
      const auto v = std::strtoul(value, &end, 10);
      if (end == value || *end != '\0' || v == 0 || v > 0xffffffffUL) usage("bad number");
      return static_cast<std::uint32_t>(v);
    };
    if (flag == "--count") {
      a.count = number();
    } else if (flag == "--puts") {
      a.puts = number();
    } else if (flag == "--batch") {
      a.batch = number();
    } else if (flag == "--rounds") {
      a.rounds = number();
    } else if (flag == "--dir") {
      a.dir = value;
    } else if (flag == "--populate") {
      a.populate = value;
    } else {
      usage("unknown option");
    }
  }
  if (a.count > (1u << 20) - 3) usage("--count is at most 1048573 (a /12 minus exclusions)");
  return a;
}

// Lease n: address 100.64.0.1 + n, half anonymous, half with an 11-character user name.
Lease lease_n(std::uint32_t n, dstm_server::Seconds now) {
  dstm_server::Lease l;
  l.ipv4 = core::Ipv4Address{kBase + 1 + n};
  core::Ipv6Address::Octets o{0x20, 0x01, 0x0d, 0xb8};
  o[12] = static_cast<std::uint8_t>(n >> 24);
  o[13] = static_cast<std::uint8_t>(n >> 16);
  o[14] = static_cast<std::uint8_t>(n >> 8);
  o[15] = static_cast<std::uint8_t>(n);
  l.client = core::Ipv6Address{o};
  l.identity = n % 2 ? fmt::format("user{:07}", n) : std::string{};
  l.tep = fmt::format("tep-{}", n % 4);
  l.granted_at = now;
  l.expires_at = now + 3600 + n % 600;
  l.state = LeaseState::active;
  return l;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// VmRSS and VmHWM of this process, in MiB.
std::pair<double, double> rss_mib() {
  std::ifstream status{"/proc/self/status"};
  std::string line;
  double rss = 0;
  double hwm = 0;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::strtod(line.c_str() + 6, nullptr) / 1024;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::strtod(line.c_str() + 6, nullptr) / 1024;
  }
  return {rss, hwm};
}

std::unique_ptr<SqliteLeaseStore> open_or_die(const std::string& path,
                                              dstm_server::SqliteOptions options = {}) {
  auto store = SqliteLeaseStore::open(path, options);
  if (!store) {
    std::fprintf(stderr, "open: %s\n", store.error().message().c_str());
    std::exit(1);
  }
  return std::move(*store);
}

void commit_or_die(SqliteLeaseStore& store) {
  if (auto r = store.commit(); !r) {
    std::fprintf(stderr, "commit: %s\n", r.error().message().c_str());
    std::exit(1);
  }
}

// One durable-put mode: its own file, its running totals.
struct Mode {
  const char* name;
  std::uint32_t batch;
  dstm_server::SqliteOptions options;
  std::unique_ptr<SqliteLeaseStore> store;
  std::uint32_t next = 0;  // next lease number
  std::uint64_t completed = 0;
  double busy = 0;  // seconds spent in put + commit
  std::vector<double> commit_ms;

  // Puts n leases, committing every `batch`; a completion counts each one.
  void run(std::uint32_t n) {
    const auto t0 = Clock::now();
    for (std::uint32_t i = 0; i < n; ++i) {
      store->put(lease_n(next++, 0), [this](const dstm_server::Result<void>& r) {
        if (!r) std::exit(1);
        ++completed;
      });
      if (store->pending() == batch || i + 1 == n) {
        const auto c0 = Clock::now();
        commit_or_die(*store);
        commit_ms.push_back(seconds_since(c0) * 1e3);
      }
    }
    busy += seconds_since(t0);
  }
  double rate() const { return static_cast<double>(completed) / busy; }
  double percentile(double p) {
    std::sort(commit_ms.begin(), commit_ms.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(commit_ms.size() - 1));
    return commit_ms[i];
  }
};

void durable_puts(const Args& args, const fs::path& dir) {
  std::vector<Mode> modes;
  modes.push_back({"one transaction per put", 1, {}, {}, 0, 0, 0, {}});
  modes.push_back({"group commit", args.batch, {}, {}, 0, 0, 0, {}});
  modes.push_back(
      {"one per put, synchronous=NORMAL", 1, {.sync = dstm_server::Sync::normal}, {}, 0, 0, 0, {}});
  for (std::size_t m = 0; m < modes.size(); ++m) {
    modes[m].store = open_or_die((dir / fmt::format("puts-{}.db", m)).string(), modes[m].options);
  }
  const std::uint32_t per_round = std::max<std::uint32_t>(1, args.puts / args.rounds);
  for (std::uint32_t r = 0; r < args.rounds; ++r) {
    for (auto& mode : modes) mode.run(per_round);
  }
  fmt::print(
      "durable puts (WAL, synchronous=FULL unless noted), {} puts per mode in {} "
      "interleaved rounds:\n",
      per_round * args.rounds, args.rounds);
  for (auto& mode : modes) {
    const auto label = mode.batch == 1 ? std::string{mode.name}
                                       : fmt::format("{}, {} per commit", mode.name, mode.batch);
    fmt::print("  {:<36} {:>9.0f} puts/s   commit p50 {:6.2f} ms  p99 {:6.2f} ms\n", label,
               mode.rate(), mode.percentile(0.5), mode.percentile(0.99));
  }
  fmt::print("  group commit / one per put (both FULL): {:.1f}x\n",
             modes[1].rate() / modes[0].rate());
}

// Evicts the file from the page cache (after writing it back) so the next read comes from disk.
void drop_from_page_cache(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

dstm_server::Pool make_pool() {
  auto pool = dstm_server::Pool::make(dstm_server::PoolConfig{
      .prefixes = {core::Ipv4Prefix::make(core::Ipv4Address{kBase}, 12).value()},
      .tep_addresses = {core::Ipv4Address{kBase + 0x000ffffeu}},
      .excluded = {}});
  if (!pool) {
    std::fprintf(stderr, "pool: %s\n", pool.error().message().c_str());
    std::exit(1);
  }
  return std::move(*pool);
}

void restart(const Args& args, const fs::path& dir) {
  const auto path = dir / "restart.db";
  {
    auto store = open_or_die(path.string());
    const auto t0 = Clock::now();
    for (std::uint32_t n = 0; n < args.count; ++n) {
      store->put(lease_n(n, 1'700'000'000), nullptr);
      if (store->pending() == 10000) commit_or_die(*store);
    }
    commit_or_die(*store);
    const auto took = seconds_since(t0);
    fmt::print("restart with {} leases:\n", args.count);
    fmt::print("  bulk insert, 10000 per commit        {:6.2f} s ({:.0f} puts/s)\n", took,
               args.count / took);
  }
  fmt::print("  file size                            {:6.1f} MiB\n",
             static_cast<double>(fs::file_size(path)) / (1 << 20));

  {
    // load_all alone: SQLite decoding and Lease building.
    drop_from_page_cache(path);
    const auto t0 = Clock::now();
    auto store = open_or_die(path.string());
    std::uint64_t seen = 0;
    const auto n = store->load_all([&](const Lease&) { ++seen; });
    if (!n || seen != args.count) std::exit(1);
    fmt::print("  open + load_all only (cold file)     {:6.2f} s\n", seconds_since(t0));
  }

  for (const bool cold : {false, true}) {
    if (cold) drop_from_page_cache(path);
    const auto [rss0, hwm0] = rss_mib();
    const auto t0 = Clock::now();
    dstm_server::LeaseTable table{make_pool(), /*grace=*/600};
    auto store = open_or_die(path.string());
    std::uint64_t failed = 0;
    const auto n = store->load_all([&](const Lease& l) {
      if (!table.restore(l)) ++failed;
    });
    const auto reaped = table.reap(1'700'000'000);
    const auto took = seconds_since(t0);
    if (!n || failed != 0 || table.size() != args.count || !reaped.expired.empty()) {
      std::fprintf(stderr, "restore went wrong\n");
      std::exit(1);
    }
    const auto [rss1, hwm1] = rss_mib();
    fmt::print("  open + load_all + restore, {} {:6.2f} s   pool {}/{} used\n",
               cold ? "cold file" : "warm file", took, table.pool().used(), table.pool().total());
    fmt::print("    RSS {:.0f} -> {:.0f} MiB (+{:.0f} MiB), peak {:.0f} MiB\n", rss0, rss1,
               rss1 - rss0, hwm1);
  }
}

}  // namespace

// A lease file for the daemon's restart and memory benchmark (bench/dstm_server_bench.sh).
void populate(const Args& args) {
  auto store = open_or_die(args.populate);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  for (std::uint32_t n = 0; n < args.count; ++n) {
    store->put(lease_n(n, now + 86400 - 3600), nullptr);
    if (store->pending() == 10000) commit_or_die(*store);
  }
  commit_or_die(*store);
  fmt::print("bench_lease_store: {} leases written to {}\n", args.count, args.populate);
}

int main(int argc, char** argv) {
  const auto args = parse_args(argc, argv);
  if (!args.populate.empty()) {
    populate(args);
    return 0;
  }
  fs::path dir;
  bool remove = false;
  if (args.dir.empty()) {
    auto pattern = (fs::temp_directory_path() / "bench-lease-store-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) usage("cannot create a temporary directory");
    dir = pattern;
    remove = true;
  } else {
    dir = args.dir;
  }
  fmt::print("bench_lease_store: files in {}\n", dir.string());
  durable_puts(args, dir);
  restart(args, dir);
  if (remove) fs::remove_all(dir);
  return 0;
}
