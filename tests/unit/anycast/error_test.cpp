// Tests for anycast/error.hpp: counter names and the error category.
#include "anycast/error.hpp"

#include <catch2/catch.hpp>
#include <set>
#include <string>

using anycast::Errc;

TEST_CASE("error: every code has a distinct snake_case name", "[anycast][error]") {
  std::set<std::string> names;
  for (int v = static_cast<int>(Errc::Truncated); v <= static_cast<int>(Errc::Unsolicited); ++v) {
    const auto name = std::string{anycast::to_string(static_cast<Errc>(v))};
    INFO(v);
    CHECK(name != "unknown");
    for (char c : name) CHECK(((c >= 'a' && c <= 'z') || c == '_'));
    CHECK(names.insert(name).second);
  }
  CHECK(anycast::to_string(Errc::BadAuthenticator) == "bad_authenticator");
  CHECK(anycast::to_string(Errc::ShortProbe) == "short_probe");
}

TEST_CASE("error: codes convert to error_code in the anycast category", "[anycast][error]") {
  const boost::system::error_code ec = Errc::Replay;
  CHECK(std::string{ec.category().name()} == "anycast");
  CHECK(ec.message() == "replay");
  CHECK(ec == Errc::Replay);
  CHECK(ec != Errc::StaleNonce);
}
