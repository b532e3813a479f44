// Binding table micro-benchmark: lookups that hit, lookups that miss, and install/erase churn with
// N bindings, tep::BindingTable against a plain std::unordered_map<Ipv4Address, Binding> holding
// the same bindings, side by side in the same process.
//
//   bench_binding_table [--short] [--rounds R] [--sizes N[,N...]]
//
// --short   what CI runs: 1k and 10k bindings, few operations, 2 rounds (a fraction of a second)
// --rounds  rounds per size (default 7): in each round every measurement runs once on each
//           table, the table that goes first alternating, so machine drift hits both alike
// --sizes   bindings per table (default 1000,100000,1000000)
//
// Per size and operation it prints the median ns/op of each table over the rounds and the median
// of the per-round ratios (BindingTable / unordered_map: below 1 is faster); only ratios compare
// across runs on these shared machines. Also the fill time per binding and the memory each table
// holds (RSS growth while it is filled, after malloc_trim).
//
// The keys are sequential addresses from 100.64.0.0/10 (RFC 6598), as a DSTM pool hands them
// out; lookups pick them in a random order. The reference map does what a lookup must (compare
// the expiry) but keeps no expiry order, so churn compares BindingTable's heap upkeep as well.
// Nothing is sent anywhere: the addresses are data.
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/address.hpp"
#include "tep/binding_table.hpp"

namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using Map = std::unordered_map<core::Ipv4Address, tep::Binding>;

constexpr std::uint32_t kPool = 0x64400000u;  // 100.64.0.0/10
// Misses come from the top quarter of the /10, above every key churn can reach.
constexpr std::uint32_t kMissBase = kPool + (3u << 20);
const tep::TimePoint kNow{24h};  // any fixed point: the table reads no clock

struct Args {
  std::vector<std::size_t> sizes{1'000, 100'000, 1'000'000};
  int rounds = 7;
  std::size_t lookups = 1'000'000;  // per measurement
  std::size_t churn = 200'000;      // erase + install pairs per measurement
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_binding_table: %s\nusage: bench_binding_table [--short] [--rounds R] "
               "[--sizes N[,N...]]\n",
               why);
  std::exit(2);
}

std::size_t parse_number(std::string_view text) {
  const std::string s{text};
  char* end = nullptr;
  const auto v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v == 0 || v > (1u << 20)) usage("bad number (1..1048576)");
  return static_cast<std::size_t>(v);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--short") {
      a.sizes = {1'000, 10'000};
      a.rounds = 2;
      a.lookups = 20'000;
      a.churn = 5'000;
      continue;
    }
    if (i + 1 >= argc) usage("missing value");
    const std::string_view value = argv[++i];
    if (flag == "--rounds") {
      a.rounds = static_cast<int>(std::min<std::size_t>(parse_number(value), 100));
    } else if (flag == "--sizes") {
      a.sizes.clear();
      for (std::size_t start = 0; start <= value.size();) {
        const auto comma = std::min(value.find(',', start), value.size());
        a.sizes.push_back(parse_number(value.substr(start, comma - start)));
        start = comma + 1;
      }
    } else {
      usage("unknown option");
    }
  }
  return a;
}

core::Ipv6Address client_of(std::uint32_t n) {
  core::Ipv6Address::Octets o{0x20, 0x01, 0x0d, 0xb8};
  o[12] = static_cast<std::uint8_t>(n >> 24);
  o[13] = static_cast<std::uint8_t>(n >> 16);
  o[14] = static_cast<std::uint8_t>(n >> 8);
  o[15] = static_cast<std::uint8_t>(n);
  return core::Ipv6Address{o};
}

// Lease lifetimes between 30 and 60 minutes, spread so the expiry heap is not in key order.
std::chrono::seconds lifetime_of(std::uint32_t n) {
  return std::chrono::seconds{1800 + (n * 7919u) % 1800};
}

tep::Binding binding_of(std::uint32_t n) {
  return tep::Binding{.client = client_of(n),
                      .expires = kNow + lifetime_of(n),
                      .learned = kNow,
                      .origin = tep::BindingOrigin::Query};
}

// Resident memory of this process in bytes, after giving freed heap pages back.
double rss_bytes() {
  malloc_trim(0);
  std::ifstream statm{"/proc/self/statm"};
  double pages = 0;
  double resident = 0;
  statm >> pages >> resident;
  return resident * 4096.0;
}

template <class F>
double ns_per_op(std::size_t ops, F&& run) {
  const auto start = SteadyClock::now();
  run();
  const auto elapsed = std::chrono::duration<double, std::nano>(SteadyClock::now() - start);
  return elapsed.count() / static_cast<double>(ops);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "bench_binding_table: %s\n", what);
  std::exit(1);
}

// One operation's per-round figures for both tables.
struct Series {
  const char* name;
  std::vector<double> table;
  std::vector<double> map;
  std::vector<double> ratio;
  void add(double t, double m) {
    table.push_back(t);
    map.push_back(m);
    ratio.push_back(t / m);
  }
};

void print_row(std::size_t size, const Series& s) {
  fmt::print("{:>9}  {:<13} {:>12.1f} {:>14.1f} {:>8.2f}\n", size, s.name, median(s.table),
             median(s.map), median(s.ratio));
}

// The operations of one measurement, generated outside the timed loops and run on both tables.
struct Churn {
  core::Ipv4Address erase;
  std::uint32_t install;  // the new key's number: the key is kPool + install
};

void run_size(const Args& args, std::size_t size, std::mt19937& rng) {
  if (size + static_cast<std::size_t>(args.rounds) * args.churn >= kMissBase - kPool)
    fail("too many rounds: churn would reach the addresses kept for misses");
  // Fill both, measuring time and memory.
  const auto n = static_cast<std::uint32_t>(size);
  tep::BindingTable table{{.max_bindings = 1 << 22}};
  Map map;
  double rss = rss_bytes();
  const double fill_table = ns_per_op(size, [&] {
    for (std::uint32_t i = 0; i < n; ++i)
      if (table.install(core::Ipv4Address{kPool + i}, client_of(i), lifetime_of(i), kNow,
                        tep::BindingOrigin::Query) != tep::BindingTable::Installed::New)
        fail("install did not add a binding");
  });
  const double table_bytes = rss_bytes() - rss;
  rss = rss_bytes();
  const double fill_map = ns_per_op(size, [&] {
    for (std::uint32_t i = 0; i < n; ++i) map.emplace(core::Ipv4Address{kPool + i}, binding_of(i));
  });
  const double map_bytes = rss_bytes() - rss;

  std::vector<core::Ipv4Address> keys;  // the bound addresses, kept in step with the churn
  keys.reserve(size);
  for (std::uint32_t i = 0; i < n; ++i) keys.push_back(core::Ipv4Address{kPool + i});
  std::uint32_t next_key = n;

  Series hit{"lookup hit", {}, {}, {}};
  Series miss{"lookup miss", {}, {}, {}};
  Series churn{"erase+install", {}, {}, {}};
  std::vector<core::Ipv4Address> hits(args.lookups);
  std::vector<core::Ipv4Address> misses(args.lookups);
  std::vector<Churn> pairs(args.churn);
  std::uniform_int_distribution<std::size_t> any_key{0, size - 1};
  std::uniform_int_distribution<std::uint32_t> any_miss{0, (1u << 20) - 1};

  for (int round = 0; round < args.rounds; ++round) {
    for (auto& a : hits) a = keys[any_key(rng)];
    for (auto& a : misses) a = core::Ipv4Address{kMissBase + any_miss(rng)};
    for (auto& p : pairs) {
      auto& victim = keys[any_key(rng)];
      p = Churn{.erase = victim, .install = next_key};
      victim = core::Ipv4Address{kPool + next_key++};
    }

    std::uint64_t found_table = 0;
    std::uint64_t found_map = 0;
    const auto lookup_table = [&](const std::vector<core::Ipv4Address>& addresses) {
      return ns_per_op(addresses.size(), [&] {
        for (const auto a : addresses) {
          if (tep::Binding* b = table.find(a, kNow)) {
            ++b->packets_to_client;  // what the data path does with a hit
            ++found_table;
          }
        }
      });
    };
    const auto lookup_map = [&](const std::vector<core::Ipv4Address>& addresses) {
      return ns_per_op(addresses.size(), [&] {
        for (const auto a : addresses) {
          const auto it = map.find(a);
          if (it != map.end() && it->second.expires > kNow) {
            ++it->second.packets_to_client;
            ++found_map;
          }
        }
      });
    };
    const auto churn_table = [&] {
      return ns_per_op(pairs.size(), [&] {
        for (const auto& p : pairs) {
          if (!table.erase(p.erase)) fail("erase found no binding");
          if (table.install(core::Ipv4Address{kPool + p.install}, client_of(p.install),
                            lifetime_of(p.install), kNow,
                            tep::BindingOrigin::Query) != tep::BindingTable::Installed::New)
            fail("install did not add a binding");
        }
      });
    };
    const auto churn_map = [&] {
      return ns_per_op(pairs.size(), [&] {
        for (const auto& p : pairs) {
          if (map.erase(p.erase) != 1) fail("erase found no binding");
          map.emplace(core::Ipv4Address{kPool + p.install}, binding_of(p.install));
        }
      });
    };

    // Alternate which table goes first in each round.
    const bool table_first = round % 2 == 0;
    double t = 0;
    double m = 0;
    if (table_first) {
      t = lookup_table(hits);
      m = lookup_map(hits);
    } else {
      m = lookup_map(hits);
      t = lookup_table(hits);
    }
    hit.add(t, m);
    if (found_table != hits.size() || found_map != hits.size()) fail("a lookup missed");
    if (table_first) {
      t = lookup_table(misses);
      m = lookup_map(misses);
    } else {
      m = lookup_map(misses);
      t = lookup_table(misses);
    }
    miss.add(t, m);
    if (found_table != hits.size() || found_map != hits.size()) fail("a lookup hit");
    if (table_first) {
      t = churn_table();
      m = churn_map();
    } else {
      m = churn_map();
      t = churn_table();
    }
    churn.add(t, m);
    if (table.size() != size || map.size() != size) fail("the tables changed size");
  }

  print_row(size, hit);
  print_row(size, miss);
  print_row(size, churn);
  fmt::print("{:>9}  {:<13} {:>12.1f} {:>14.1f} {:>8.2f}\n", size, "fill", fill_table, fill_map,
             fill_table / fill_map);
  fmt::print(
      "{:>9}  {:<13} {:>12.1f} {:>14.1f} {:>8.2f}   (MiB resident, B/binding {:.0f} vs {:.0f})\n",
      size, "memory", table_bytes / (1 << 20), map_bytes / (1 << 20), table_bytes / map_bytes,
      table_bytes / static_cast<double>(size), map_bytes / static_cast<double>(size));
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  fmt::print("binding table: {} round(s), {} lookups and {} erase+install pairs per measurement\n",
             args.rounds, args.lookups, args.churn);
  fmt::print("{:>9}  {:<13} {:>12} {:>14} {:>8}\n", "bindings", "operation", "table ns/op",
             "map ns/op", "ratio");
  std::mt19937 rng{20240601};
  for (const std::size_t size : args.sizes) run_size(args, size, rng);
  return 0;
}
