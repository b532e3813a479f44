// The tunnel-mode routing table: one hash map per family keyed by (network, length), probed once
// per length in use, longest first.
#include "relay/prefix_table.hpp"

#include <algorithm>
#include <iterator>

namespace relay {
namespace {

// Fibonacci hashing: spreads the low-entropy keys of a routing table (zero host bits, small
// lengths) across buckets.
constexpr std::uint64_t kMix = 0x9E3779B97F4A7C15ull;

std::uint32_t mask4(std::uint32_t a, unsigned length) noexcept {
  return length == 0 ? 0 : a & (~std::uint32_t{0} << (32 - length));
}

// Clears every bit from `length` on. Lookups walk lengths downwards, so masking the previous
// result again gives the same as masking the address afresh.
void mask6(core::Ipv6Address::Octets& b, unsigned length) noexcept {
  std::size_t i = length / 8;
  if (const unsigned bits = length % 8; bits != 0) {
    b[i] = static_cast<std::uint8_t>(b[i] & (0xffu << (8 - bits)));
    ++i;
  }
  for (; i < b.size(); ++i) b[i] = 0;
}

}  // namespace

std::size_t PrefixTable::Hash::operator()(const Key4& k) const noexcept {
  return static_cast<std::size_t>(((std::uint64_t{k.network} << 8) | k.length) * kMix);
}

std::size_t PrefixTable::Hash::operator()(const Key6& k) const noexcept {
  // The same network often appears at several lengths (2001:db8::/32 and /48).
  return std::hash<core::Ipv6Address>{}(k.network) ^ static_cast<std::size_t>(k.length * kMix);
}

template <std::size_t Bits>
void PrefixTable::Lengths<Bits>::add(std::uint8_t length) noexcept {
  if (count[length]++ > 0) return;
  // Keep in_use sorted longest first: shift the shorter lengths up by one.
  std::size_t at = 0;
  while (at < used && in_use[at] > length) ++at;
  for (std::size_t i = used; i > at; --i) in_use[i] = in_use[i - 1];
  in_use[at] = length;
  ++used;
}

template <std::size_t Bits>
void PrefixTable::Lengths<Bits>::remove(std::uint8_t length) noexcept {
  if (--count[length] > 0) return;
  std::size_t at = 0;
  while (in_use[at] != length) ++at;
  for (std::size_t i = at; i + 1 < used; ++i) in_use[i] = in_use[i + 1];
  --used;
}

void PrefixTable::insert(const Prefix& prefix, std::uint16_t mux) {
  if (const auto* p4 = std::get_if<core::Ipv4Prefix>(&prefix)) {
    const auto length = static_cast<std::uint8_t>(p4->length());
    if (v4_.insert_or_assign(Key4{p4->network().to_uint(), length}, mux).second)
      lengths4_.add(length);
    return;
  }
  const auto& p6 = *std::get_if<core::Ipv6Prefix>(&prefix);
  const auto length = static_cast<std::uint8_t>(p6.length());
  if (v6_.insert_or_assign(Key6{p6.network(), length}, mux).second) lengths6_.add(length);
}

bool PrefixTable::erase(const Prefix& prefix) noexcept {
  if (const auto* p4 = std::get_if<core::Ipv4Prefix>(&prefix)) {
    const auto length = static_cast<std::uint8_t>(p4->length());
    if (v4_.erase(Key4{p4->network().to_uint(), length}) == 0) return false;
    lengths4_.remove(length);
    return true;
  }
  const auto& p6 = *std::get_if<core::Ipv6Prefix>(&prefix);
  const auto length = static_cast<std::uint8_t>(p6.length());
  if (v6_.erase(Key6{p6.network(), length}) == 0) return false;
  lengths6_.remove(length);
  return true;
}

std::size_t PrefixTable::erase_mux(std::uint16_t mux) noexcept {
  std::size_t n = 0;
  for (auto it = v4_.begin(); it != v4_.end();) {
    if (it->second != mux) {
      ++it;
      continue;
    }
    lengths4_.remove(it->first.length);
    it = v4_.erase(it);
    ++n;
  }
  for (auto it = v6_.begin(); it != v6_.end();) {
    if (it->second != mux) {
      ++it;
      continue;
    }
    lengths6_.remove(it->first.length);
    it = v6_.erase(it);
    ++n;
  }
  return n;
}

void PrefixTable::clear() noexcept {
  v4_.clear();
  v6_.clear();
  lengths4_ = {};
  lengths6_ = {};
}

std::optional<std::uint16_t> PrefixTable::lookup(core::Ipv4Address a) const noexcept {
  for (std::size_t i = 0; i < lengths4_.used; ++i) {
    const auto length = lengths4_.in_use[i];
    if (auto it = v4_.find(Key4{mask4(a.to_uint(), length), length}); it != v4_.end())
      return it->second;
  }
  return std::nullopt;
}

std::optional<std::uint16_t> PrefixTable::lookup(const core::Ipv6Address& a) const noexcept {
  auto b = a.bytes();
  for (std::size_t i = 0; i < lengths6_.used; ++i) {
    const auto length = lengths6_.in_use[i];
    mask6(b, length);
    if (auto it = v6_.find(Key6{core::Ipv6Address{b}, length}); it != v6_.end()) return it->second;
  }
  return std::nullopt;
}

std::optional<std::uint16_t> PrefixTable::lookup_destination(core::Bytes ip_packet) const noexcept {
  // RFC 791 section 3.1: the destination is bytes 16..19 of the 20-byte fixed header; RFC 8200
  // section 3: bytes 24..39 of the 40-byte fixed header.
  core::ByteReader in{ip_packet};
  const auto version = in.u8() >> 4;
  if (version == 4 && ip_packet.size() >= 20) {
    in.skip(15);
    return lookup(core::Ipv4Address{in.u32()});
  }
  if (version == 6 && ip_packet.size() >= 40) {
    in.skip(23);
    return lookup(core::Ipv6Address{in.array<16>()});
  }
  return std::nullopt;
}

std::size_t PrefixTable::size() const noexcept {
  return v4_.size() + v6_.size();
}

std::vector<Route> PrefixTable::routes() const {
  std::vector<Route> out;
  out.reserve(size());
  // Built from keys that came from valid prefixes: make() cannot fail.
  for (const auto& [k, mux] : v4_)
    out.push_back(
        Route{core::Ipv4Prefix::make(core::Ipv4Address{k.network}, k.length).value(), mux});
  for (const auto& [k, mux] : v6_)
    out.push_back(Route{core::Ipv6Prefix::make(k.network, k.length).value(), mux});
  // variant's ordering puts every IPv4 prefix (index 0) before every IPv6 one.
  std::ranges::sort(out, [](const Route& a, const Route& b) { return a.prefix < b.prefix; });
  return out;
}

std::vector<Route> PrefixTable::routes_of(std::uint16_t mux) const {
  auto all = routes();
  std::erase_if(all, [mux](const Route& r) { return r.mux != mux; });
  return all;
}

}  // namespace relay
