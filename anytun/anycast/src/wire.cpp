// ARR/UDP codec: the shim header, probe bodies and the RFC 6275 Mobility Header messages.
#include "anycast/wire.hpp"

#include <utility>

#include "core/bytes.hpp"
#include "core/overloaded.hpp"

namespace anycast {
namespace {

// RFC 6275 section 6.1.1: Payload Proto should be IPPROTO_NONE.
constexpr std::uint8_t kPayloadProtoNone = 59;
// Payload Proto, Header Len, MH Type, Reserved, Checksum.
constexpr std::size_t kMhHeaderSize = 6;
// The MH (and its Header Len unit) is counted in 8-octet units.
constexpr std::size_t kMhUnit = 8;
// Section 6.2: option types.
constexpr std::uint8_t kPad1 = 0;
constexpr std::uint8_t kPadN = 1;
constexpr std::uint8_t kNonceIndicesOption = 4;
constexpr std::uint8_t kAuthDataOption = 5;
constexpr std::size_t kHomeAddressLength = 16;
constexpr std::size_t kNonceIndicesLength = 4;
constexpr std::size_t kAuthDataLength = std::tuple_size_v<Authenticator>;
// BA (section 6.1.8): K is the top bit of the byte after Status.
constexpr std::uint8_t kBaFlagKey = 0x80;
// Probe: u16 flags, u16 reserved, 16-byte nonce.
constexpr std::size_t kProbeBodySize = 20;
// Probe answer: u16 flags, u16 ttl, nonce, anycast, unicast.
constexpr std::size_t kProbeAnswerSize = kShimSize + 4 + 16 + 16 + 16;

// Bytes of message data after the 6-byte MH header, before the options (section 6.1.2-6.1.8).
constexpr std::size_t fixed_data_size(MhType type) noexcept {
  switch (type) {
    case MhType::Hoti:
    case MhType::Coti:
      return 10;  // Reserved16, cookie
    case MhType::Hot:
    case MhType::Cot:
      return 18;  // nonce index, cookie, keygen token
    case MhType::Bu:
    case MhType::Ba:
      return 6;  // sequence/flags/lifetime, status/K/sequence/lifetime
  }
  return 0;
}

core::Ipv6Address read_address(core::ByteReader& in) noexcept {
  return core::Ipv6Address{in.array<16>()};
}

Result<Body> parse_probe(core::Bytes datagram) noexcept {
  // Anti-amplification: every answer must fit in the bytes the prober spent.
  if (datagram.size() < kProbeMinSize) return Errc::ShortProbe;
  core::ByteReader in{datagram.subspan(kShimSize)};
  Probe p;
  p.flags = in.u16();
  const std::uint16_t reserved = in.u16();
  p.nonce = in.array<16>();
  if ((p.flags & ~kProbeFlagBinding) != 0 || reserved != 0) return Errc::BadFlags;
  for (std::byte b : in.rest())
    if (b != std::byte{0}) return Errc::BadLength;
  return Body{p};
}

Result<Body> parse_probe_answer(core::Bytes datagram) noexcept {
  if (datagram.size() < kProbeAnswerSize) return Errc::Truncated;
  if (datagram.size() > kProbeAnswerSize) return Errc::BadLength;
  core::ByteReader in{datagram.subspan(kShimSize)};
  ProbeAnswer a;
  a.flags = in.u16();
  a.ttl_seconds = in.u16();
  a.nonce = in.array<16>();
  a.anycast = read_address(in);
  a.unicast = read_address(in);
  if ((a.flags & ~kProbeFlagBinding) != 0) return Errc::BadFlags;
  return Body{a};
}

struct Options {
  std::optional<core::Ipv6Address> home_address;
  std::optional<NonceIndices> nonce_indices;
  std::optional<Authenticator> authenticator;
};

// Section 6.2: TLVs after the message data up to the end of the MH. `at` and the alignment
// rules count from the first byte of the MH. Only the options `type` may carry are accepted;
// Binding Authorization Data ends the MH.
Result<Options> parse_options(core::Bytes mh, std::size_t at, MhType type) noexcept {
  const bool bu = type == MhType::Bu;
  const bool auth_allowed = bu || type == MhType::Ba;
  Options o;
  while (at < mh.size()) {
    if (o.authenticator) return Errc::BadOption;  // anything after the authorization data
    const auto option = std::to_integer<std::uint8_t>(mh[at]);
    if (option == kPad1) {
      ++at;
      continue;
    }
    if (mh.size() - at < 2) return Errc::BadOption;
    const auto length = std::to_integer<std::size_t>(mh[at + 1]);
    if (mh.size() - at - 2 < length) return Errc::BadOption;
    core::ByteReader data{mh.subspan(at + 2, length)};
    switch (option) {
      case kPadN:
        break;
      case kHomeAddressOption:  // 8n+6
        if (!bu || length != kHomeAddressLength || at % 8 != 6 || o.home_address)
          return Errc::BadOption;
        o.home_address = read_address(data);
        break;
      case kNonceIndicesOption:  // 2n
        if (!bu || length != kNonceIndicesLength || at % 2 != 0 || o.nonce_indices)
          return Errc::BadOption;
        o.nonce_indices = NonceIndices{.home = data.u16(), .care_of = data.u16()};
        break;
      case kAuthDataOption:  // 8n+2
        if (!auth_allowed || length != kAuthDataLength || at % 8 != 2) return Errc::BadOption;
        o.authenticator = data.array<kAuthDataLength>();
        break;
      default:
        return Errc::BadOption;
    }
    at += 2 + length;
  }
  return o;
}

Result<Parsed> parse_mobility_header(core::Bytes datagram, std::uint8_t shim_flags) noexcept {
  const auto mh = datagram.subspan(kShimSize);
  if (mh.size() < kMhUnit) return Errc::Truncated;
  core::ByteReader in{mh};
  const std::uint8_t proto = in.u8();
  const std::uint8_t header_len = in.u8();
  const std::uint8_t raw_type = in.u8();
  in.skip(1);  // Reserved: ignored on receipt (section 6.1.1)
  const std::uint16_t checksum = in.u16();
  if (proto != kPayloadProtoNone) return Errc::BadPayloadProto;
  const std::size_t total = (std::size_t{header_len} + 1) * kMhUnit;
  if (total > mh.size()) return Errc::Truncated;
  if (total < mh.size()) return Errc::BadLength;  // bytes after the MH
  if (raw_type < static_cast<std::uint8_t>(MhType::Hoti) ||
      raw_type > static_cast<std::uint8_t>(MhType::Ba))
    return Errc::UnknownKind;
  const auto type = static_cast<MhType>(raw_type);
  if (checksum != 0) return Errc::BadChecksum;
  if ((shim_flags & kFlagEquivalent) != 0 && type != MhType::Bu) return Errc::BadFlags;
  if (kMhHeaderSize + fixed_data_size(type) > total) return Errc::BadLength;

  auto options = parse_options(mh, kMhHeaderSize + fixed_data_size(type), type);
  if (!options) return options.error();

  Parsed out;
  out.message.flags = shim_flags;
  switch (type) {
    case MhType::Hoti:
    case MhType::Coti: {
      in.skip(2);  // Reserved
      const Cookie cookie = in.array<8>();
      if (type == MhType::Hoti)
        out.message.body = Hoti{cookie};
      else
        out.message.body = Coti{cookie};
      break;
    }
    case MhType::Hot:
    case MhType::Cot: {
      const std::uint16_t index = in.u16();
      const Cookie cookie = in.array<8>();
      const KeygenToken token = in.array<8>();
      if (type == MhType::Hot)
        out.message.body = Hot{index, cookie, token};
      else
        out.message.body = Cot{index, cookie, token};
      break;
    }
    case MhType::Bu: {
      BindingUpdate bu;
      bu.sequence = in.u16();
      bu.flags = in.u16();
      bu.lifetime = in.u16();
      bu.home_address = options->home_address;
      bu.nonce_indices = options->nonce_indices;
      bu.authenticator = options->authenticator;
      out.message.body = bu;
      break;
    }
    case MhType::Ba: {
      BindingAck ba;
      ba.status = static_cast<BaStatus>(in.u8());
      ba.key_management = (in.u8() & kBaFlagKey) != 0;
      ba.sequence = in.u16();
      ba.lifetime = in.u16();
      ba.authenticator = options->authenticator;
      out.message.body = ba;
      break;
    }
  }
  // The authorization data is the last option and the MH ends the datagram, so the
  // authenticator is the datagram's last 12 bytes.
  if (options->authenticator) out.authenticated = datagram.first(datagram.size() - kAuthDataLength);
  return out;
}

// Appends network-order fields; the MH helpers track the offset from the MH's first byte.
class Writer {
 public:
  explicit Writer(std::size_t reserve) { out_.reserve(reserve); }

  Writer& u8(std::uint8_t v) {
    out_.push_back(std::byte{v});
    return *this;
  }
  Writer& u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    return u8(static_cast<std::uint8_t>(v & 0xff));
  }
  template <std::size_t N>
  Writer& array(const std::array<std::uint8_t, N>& a) {
    for (std::uint8_t b : a) u8(b);
    return *this;
  }
  Writer& zeros(std::size_t n) {
    out_.insert(out_.end(), n, std::byte{0});
    return *this;
  }
  std::size_t size() const noexcept { return out_.size(); }

  // Starts the MH: Payload Proto, Header Len (filled by end_mh), type, Reserved, Checksum 0.
  void begin_mh(MhType type) {
    mh_start_ = out_.size();
    u8(kPayloadProtoNone).u8(0).u8(static_cast<std::uint8_t>(type)).u8(0).u16(0);
  }
  // Section 6.2: Pad1 for one byte, PadN for more, so that the next option starts at xn+y.
  void align(std::size_t x, std::size_t y) {
    const std::size_t pad = (y + x - mh_offset() % x) % x;
    if (pad == 1) {
      u8(kPad1);
    } else if (pad > 1) {
      u8(kPadN).u8(static_cast<std::uint8_t>(pad - 2)).zeros(pad - 2);
    }
  }
  // Pads the MH to a multiple of 8 octets and writes Header Len (units after the first 8).
  std::vector<std::byte> end_mh() && {
    align(kMhUnit, 0);
    out_[mh_start_ + 1] = std::byte{static_cast<std::uint8_t>(mh_offset() / kMhUnit - 1)};
    return std::move(out_);
  }
  std::vector<std::byte> take() && { return std::move(out_); }

 private:
  std::size_t mh_offset() const noexcept { return out_.size() - mh_start_; }
  std::vector<std::byte> out_;
  std::size_t mh_start_ = 0;
};

void write_authenticator(Writer& w, const std::optional<Authenticator>& a) {
  if (!a) return;
  w.align(8, 2);
  w.u8(kAuthDataOption).u8(static_cast<std::uint8_t>(kAuthDataLength)).array(*a);
}

}  // namespace

Result<Parsed> parse(std::span<const std::byte> datagram) noexcept {
  if (datagram.size() < kShimSize) return Errc::Truncated;
  core::ByteReader in{datagram};
  const std::uint8_t magic = in.u8();
  const std::uint8_t version = in.u8();
  const std::uint8_t flags = in.u8();
  const std::uint8_t kind = in.u8();
  if (magic != kMagic) return Errc::BadMagic;
  if (version != kVersion) return Errc::BadVersion;
  if (datagram.size() > kMaxDatagram) return Errc::BadLength;
  if ((flags & ~kFlagEquivalent) != 0) return Errc::BadFlags;

  const auto simple = [&](Result<Body> body) -> Result<Parsed> {
    if (!body) return body.error();
    // E belongs to the BU only.
    if (flags != 0) return Errc::BadFlags;
    return Parsed{Message{flags, std::move(*body)}, {}};
  };
  switch (kind) {
    case static_cast<std::uint8_t>(Kind::Probe):
      return simple(parse_probe(datagram));
    case static_cast<std::uint8_t>(Kind::ProbeAnswer):
      return simple(parse_probe_answer(datagram));
    case static_cast<std::uint8_t>(Kind::MobilityHeader):
      return parse_mobility_header(datagram, flags);
    default:
      return Errc::UnknownKind;
  }
}

std::vector<std::byte> encode(const Message& message) {
  Writer w{kProbeMinSize};
  w.u8(kMagic).u8(kVersion).u8(message.flags);
  return std::visit(
      core::Overloaded{
          [&](const Probe& p) {
            w.u8(static_cast<std::uint8_t>(Kind::Probe)).u16(p.flags).u16(0).array(p.nonce);
            w.zeros(kProbeMinSize - kShimSize - kProbeBodySize);
            return std::move(w).take();
          },
          [&](const ProbeAnswer& a) {
            w.u8(static_cast<std::uint8_t>(Kind::ProbeAnswer)).u16(a.flags).u16(a.ttl_seconds);
            w.array(a.nonce).array(a.anycast.bytes()).array(a.unicast.bytes());
            return std::move(w).take();
          },
          [&](const Hoti& h) {
            w.u8(static_cast<std::uint8_t>(Kind::MobilityHeader));
            w.begin_mh(MhType::Hoti);
            w.u16(0).array(h.cookie);
            return std::move(w).end_mh();
          },
          [&](const Coti& c) {
            w.u8(static_cast<std::uint8_t>(Kind::MobilityHeader));
            w.begin_mh(MhType::Coti);
            w.u16(0).array(c.cookie);
            return std::move(w).end_mh();
          },
          [&](const Hot& h) {
            w.u8(static_cast<std::uint8_t>(Kind::MobilityHeader));
            w.begin_mh(MhType::Hot);
            w.u16(h.nonce_index).array(h.cookie).array(h.token);
            return std::move(w).end_mh();
          },
          [&](const Cot& c) {
            w.u8(static_cast<std::uint8_t>(Kind::MobilityHeader));
            w.begin_mh(MhType::Cot);
            w.u16(c.nonce_index).array(c.cookie).array(c.token);
            return std::move(w).end_mh();
          },
          [&](const BindingUpdate& bu) {
            w.u8(static_cast<std::uint8_t>(Kind::MobilityHeader));
            w.begin_mh(MhType::Bu);
            w.u16(bu.sequence).u16(bu.flags).u16(bu.lifetime);
            if (bu.home_address) {
              w.align(8, 6);
              w.u8(kHomeAddressOption).u8(static_cast<std::uint8_t>(kHomeAddressLength));
              w.array(bu.home_address->bytes());
            }
            if (bu.nonce_indices) {
              w.align(2, 0);
              w.u8(kNonceIndicesOption).u8(static_cast<std::uint8_t>(kNonceIndicesLength));
              w.u16(bu.nonce_indices->home).u16(bu.nonce_indices->care_of);
            }
            write_authenticator(w, bu.authenticator);
            return std::move(w).end_mh();
          },
          [&](const BindingAck& ba) {
            w.u8(static_cast<std::uint8_t>(Kind::MobilityHeader));
            w.begin_mh(MhType::Ba);
            w.u8(static_cast<std::uint8_t>(ba.status)).u8(ba.key_management ? kBaFlagKey : 0);
            w.u16(ba.sequence).u16(ba.lifetime);
            write_authenticator(w, ba.authenticator);
            return std::move(w).end_mh();
          },
      },
      message.body);
}

std::span<const std::byte> authenticated_portion(std::span<const std::byte> encoded) noexcept {
  auto parsed = parse(encoded);
  if (!parsed) return {};
  return parsed->authenticated;
}

}  // namespace anycast
