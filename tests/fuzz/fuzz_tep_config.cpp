// The appliance config document as the TEP daemon reads it (its "tep" section). Invariants:
// never a crash, a hang or a leak; a rejected document names at least one error with a JSON
// pointer and a message; an accepted one respects the rules the reader promises.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string_view>

#include "fuzz_check.hpp"
#include "tep_daemon/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text{reinterpret_cast<const char*>(data), size};
  const auto teps = tep_daemon::parse_config_document(text);
  if (!teps) {
    const auto errors = teps.error();
    FUZZ_CHECK(!errors.empty());
    for (const auto& e : errors) {
      FUZZ_CHECK(e.path.empty() || e.path.front() == '/');
      FUZZ_CHECK(!e.message.empty());
    }
    return 0;
  }
  std::set<std::string> names;
  for (const auto& t : *teps) {
    FUZZ_CHECK(!t.pool.empty());
    FUZZ_CHECK(names.insert(t.name).second);
    FUZZ_CHECK(t.tunnel_mtu >= 1280);
    FUZZ_CHECK(!t.server.password.empty());
    for (const auto& p : t.pool) FUZZ_CHECK(!p.contains(t.ipv4));
  }
  return 0;
}
