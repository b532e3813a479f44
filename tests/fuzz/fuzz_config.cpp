// The appliance config document as the dstm-server reads it: strict JSON, the "dstm_server"
// section and its cross-field rules. The dashboard sends this text from the network. Invariants:
// never a crash, a hang or a leak; a rejected document names at least one error, each with a
// JSON pointer ("" or starting with '/') and a message; an accepted one respects the rules the
// reader promises.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dstm_server/config.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text{reinterpret_cast<const char*>(data), size};
  const auto config = dstm_server::parse_config_document(text);
  if (!config) {
    const auto errors = config.error();
    FUZZ_CHECK(!errors.empty());
    for (const auto& e : errors) {
      FUZZ_CHECK(e.path.empty() || e.path.front() == '/');
      FUZZ_CHECK(!e.message.empty());
    }
    return 0;
  }
  FUZZ_CHECK(!config->pool.prefixes.empty());
  FUZZ_CHECK(!config->teps.empty());
  FUZZ_CHECK(config->lease.max_lifetime >= config->lease.lifetime);
  FUZZ_CHECK(config->heartbeat_interval < config->tep_timeout);
  for (const auto& tep : config->teps) {
    FUZZ_CHECK(tep.weight >= 1);
    for (const auto& p : config->pool.prefixes) FUZZ_CHECK(!p.contains(tep.ipv4));
  }
  for (const auto& u : config->auth.users)
    FUZZ_CHECK(dstm_server::parse_verifier_hex(tsp::to_hex(u.verifier)) == u.verifier);
  return 0;
}
