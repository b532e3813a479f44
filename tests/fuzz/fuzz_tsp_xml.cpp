// libFuzzer target: the tunnel XML reader, reply parser and writer. Invariant: whatever the reader
// accepts, the writer writes back to a document the reader reads as the same message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tsp/message.hpp"

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in{reinterpret_cast<const char*>(data), size};
  const tsp::XmlLimits limits{};

  if (auto t = tsp::parse_tunnel(in, limits)) {
    const auto xml = tsp::write_tunnel(*t);
    FUZZ_CHECK(xml.find("<?") == std::string::npos);
    if (xml.size() <= limits.max_bytes) {
      auto again = tsp::parse_tunnel(xml, limits);
      FUZZ_CHECK(again.has_value());
      FUZZ_CHECK(*again == *t);
      FUZZ_CHECK(tsp::write_tunnel(*again) == xml);
    }
    // Framing counts exactly.
    const auto framed = tsp::request_message(*t);
    const auto header_end = framed.find("\r\n") + 2;
    FUZZ_CHECK(std::to_string(framed.size() - header_end) ==
               framed.substr(16, framed.find("\r\n") - 16));
  }
  if (auto r = tsp::parse_reply(in, limits)) {
    FUZZ_CHECK(r->status.code >= 0 && r->status.code <= 9999);
  }
  return 0;
}
