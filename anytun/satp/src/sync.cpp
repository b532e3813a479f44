// anytun 0.3.8's sync records written and read as Boost text archives, and the stream framer.
#include "satp/sync.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <system_error>
#include <type_traits>

namespace satp::sync {
namespace {

constexpr std::string_view kSignature = "serialization::archive";
constexpr std::string_view kConnection = "connection";
constexpr std::string_view kRoute = "route";
// A host is at most an IPv6 text with an embedded dotted quad (45); anything longer cannot parse.
constexpr std::size_t kMaxAddressText = 64;
// The longest kind name worth comparing; a longer string is still read (it is well-formed).
constexpr std::size_t kMaxKindText = 64;

// anytun's network_address_type_t.
enum class AddressType : unsigned { Ipv4 = 0, Ipv6 = 1, Ethernet = 2 };

// --- Writing ----------------------------------------------------------------------------------

// text_oarchive puts one space before every token but the first (its newtoken()).
class ArchiveWriter {
 public:
  void number(std::uint64_t v) {
    sep();
    std::array<char, 24> digits{};
    auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), v);
    (void)ec;  // 24 characters hold any uint64_t
    out_.append(digits.data(), end);
  }
  // std::string is a primitive in Boost: its size, one space, its bytes.
  void string(std::string_view s) {
    number(s.size());
    out_.push_back(' ');
    out_.append(s);
  }
  // The class preamble (tracking level 0, class version 0), once per class.
  void preamble() {
    number(0);
    number(0);
  }
  std::string take() { return std::move(out_); }

 private:
  void sep() {
    if (!out_.empty()) out_.push_back(' ');
  }
  std::string out_;
};

void write_header(ArchiveWriter& w, std::string_view kind) {
  w.string(kSignature);
  w.number(kArchiveVersion);
  w.preamble();  // SyncCommand
  w.string(kind);
}

Result<std::string> write_archive(const Connection& c) {
  const auto key_size = c.master_key.size();
  if (key_size != 16 && key_size != 24 && key_size != 32) return Errc::BadKeyLength;
  ArchiveWriter w;
  write_header(w, kConnection);
  w.preamble();  // SyncConnectionCommand
  w.number(c.mux);
  w.preamble();  // ConnectionParam
  w.preamble();  // KeyDerivation
  w.number(static_cast<unsigned>(c.role));
  w.number(key_size * 8);
  w.preamble();  // SyncBuffer: written for the salt only, the key is the same class
  w.number(c.master_salt.size());
  for (auto b : c.master_salt) w.number(b);
  w.number(key_size);
  for (auto b : c.master_key) w.number(b);
  w.preamble();  // SeqWindow
  w.number(c.window_size);
  w.number(c.seq_nr);
  std::visit([&](const auto& a) { w.string(a.to_string()); }, c.remote_host);
  w.number(c.remote_port);
  return w.take();
}

Result<std::string> write_archive(const Route& r) {
  if (!anytun_can_take(r.prefix)) return Errc::Unsupported;
  ArchiveWriter w;
  write_header(w, kRoute);
  w.preamble();  // SyncRouteCommand
  w.preamble();  // NetworkPrefix
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        w.number(p.length());
        w.preamble();  // NetworkAddress, NetworkPrefix's base
        w.number(static_cast<unsigned>(std::is_same_v<P, core::Ipv4Prefix> ? AddressType::Ipv4
                                                                           : AddressType::Ipv6));
        w.string(p.network().to_string());
      },
      r.prefix);
  w.number(r.mux);
  return w.take();
}

// --- Reading ----------------------------------------------------------------------------------

// Reads the tokens of one archive in order. Every read names the error it fails with, so the
// same malformation is BadArchive in the archive's own framing and BadRecord in a field.
class ArchiveReader {
 public:
  explicit ArchiveReader(std::string_view in) noexcept : in_{in} {}

  // A decimal number <= max: digits only, no sign, no leading zero (Boost writes none).
  Result<std::uint64_t> number(std::uint64_t max, Errc err) noexcept {
    if (!sep()) return err;
    std::size_t n = 0;
    while (pos_ + n < in_.size() && in_[pos_ + n] >= '0' && in_[pos_ + n] <= '9') ++n;
    if (n == 0 || (n > 1 && in_[pos_] == '0')) return err;
    std::uint64_t v = 0;
    const char* first = in_.data() + pos_;
    auto [end, ec] = std::from_chars(first, first + n, v);
    if (ec != std::errc{} || end != first + n || v > max) return err;
    pos_ += n;
    return v;
  }
  // "0 0": tracking level 0, class version 0. Anything else is an archive anytun did not write.
  Result<void> preamble() noexcept {
    for (int i = 0; i < 2; ++i) {
      auto v = number(0, Errc::BadArchive);
      if (!v) return v.error();
    }
    return {};
  }
  // "<size> <bytes>"; a size above max is `err` before anything is taken.
  Result<std::string_view> string(std::size_t max, Errc err) noexcept {
    auto size = number(max, err);
    if (!size) return size.error();
    if (pos_ >= in_.size() || in_[pos_] != ' ') return err;
    ++pos_;
    if (*size > in_.size() - pos_) return err;
    auto s = in_.substr(pos_, static_cast<std::size_t>(*size));
    pos_ += s.size();
    return s;
  }
  bool at_end() const noexcept { return pos_ == in_.size(); }

 private:
  // Exactly one space before every token but the first.
  bool sep() noexcept {
    if (pos_ == 0) return true;
    if (pos_ >= in_.size() || in_[pos_] != ' ') return false;
    ++pos_;
    return true;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

#define SATP_TRY(var, expr)             \
  auto var##_r = (expr);                \
  if (!var##_r) return var##_r.error(); \
  const auto var = *var##_r

#define SATP_TRY_VOID(expr)     \
  do {                          \
    auto r_ = (expr);           \
    if (!r_) return r_.error(); \
  } while (0)

Result<RemoteAddress> parse_host(std::string_view text) noexcept {
  if (text.find(':') != std::string_view::npos) {
    auto a = core::Ipv6Address::parse(text);
    if (!a) return Errc::BadRecord;
    return RemoteAddress{*a};
  }
  auto a = core::Ipv4Address::parse(text);
  if (!a) return Errc::BadRecord;
  return RemoteAddress{*a};
}

Result<Record> parse_connection(ArchiveReader& r) noexcept {
  constexpr auto kU16 = std::uint64_t{std::numeric_limits<std::uint16_t>::max()};
  constexpr auto kU32 = std::uint64_t{std::numeric_limits<std::uint32_t>::max()};
  constexpr auto bad = Errc::BadRecord;
  Connection c;
  SATP_TRY_VOID(r.preamble());  // SyncConnectionCommand
  SATP_TRY(mux, r.number(kU16, bad));
  SATP_TRY_VOID(r.preamble());  // ConnectionParam
  SATP_TRY_VOID(r.preamble());  // KeyDerivation
  SATP_TRY(role, r.number(1, bad));
  SATP_TRY(bits, r.number(kU16, bad));
  // Key length 0 is anytun's null kd-prf: a valid record, but of a connection without keys that
  // the relay cannot serve.
  if (bits == 0) return Errc::Unsupported;
  if (bits != 128 && bits != 192 && bits != 256) return bad;
  SATP_TRY_VOID(r.preamble());  // SyncBuffer
  SATP_TRY(salt_size, r.number(kU16, bad));
  if (salt_size != kSaltSize) return bad;
  for (auto& b : c.master_salt) {
    SATP_TRY(v, r.number(255, bad));
    b = static_cast<std::uint8_t>(v);
  }
  SATP_TRY(key_size, r.number(kU16, bad));
  if (key_size * 8 != bits) return bad;
  c.master_key.resize(static_cast<std::size_t>(key_size));
  for (auto& b : c.master_key) {
    SATP_TRY(v, r.number(255, bad));
    b = static_cast<std::uint8_t>(v);
  }
  SATP_TRY_VOID(r.preamble());  // SeqWindow
  SATP_TRY(window, r.number(kU16, bad));
  SATP_TRY(seq, r.number(kU32, bad));
  SATP_TRY(host_text, r.string(kMaxAddressText, bad));
  SATP_TRY(host, parse_host(host_text));
  SATP_TRY(port, r.number(kU16, bad));
  if (!r.at_end()) return Errc::BadArchive;
  c.mux = static_cast<std::uint16_t>(mux);
  c.role = static_cast<Role>(role);
  c.window_size = static_cast<std::uint16_t>(window);
  c.seq_nr = static_cast<std::uint32_t>(seq);
  c.remote_host = host;
  c.remote_port = static_cast<std::uint16_t>(port);
  return Record{std::move(c)};
}

// Clears the bits past `length` (anytun's tree never looks at them).
core::Ipv4Address mask(core::Ipv4Address a, unsigned length) noexcept {
  const std::uint32_t m = length == 0 ? 0 : ~std::uint32_t{0} << (32 - length);
  return core::Ipv4Address{a.to_uint() & m};
}
core::Ipv6Address mask(const core::Ipv6Address& a, unsigned length) noexcept {
  auto b = a.bytes();
  for (std::size_t i = 0; i < b.size(); ++i) {
    const auto first_bit = i * 8;
    if (first_bit >= length) {
      b[i] = 0;
    } else if (length - first_bit < 8) {
      b[i] = static_cast<std::uint8_t>(b[i] & (0xff << (8 - (length - first_bit))));
    }
  }
  return core::Ipv6Address{b};
}

Result<Record> parse_route(ArchiveReader& r) noexcept {
  constexpr auto bad = Errc::BadRecord;
  SATP_TRY_VOID(r.preamble());           // SyncRouteCommand
  SATP_TRY_VOID(r.preamble());           // NetworkPrefix
  SATP_TRY(length, r.number(255, bad));  // uint8_t, written as a number
  SATP_TRY_VOID(r.preamble());           // NetworkAddress
  SATP_TRY(type, r.number(static_cast<unsigned>(AddressType::Ethernet), bad));
  SATP_TRY(text, r.string(kMaxAddressText, bad));
  SATP_TRY(mux, r.number(std::numeric_limits<std::uint16_t>::max(), bad));
  if (!r.at_end()) return Errc::BadArchive;
  const auto len = static_cast<unsigned>(length);
  Route route;
  route.mux = static_cast<std::uint16_t>(mux);
  switch (static_cast<AddressType>(type)) {
    case AddressType::Ipv4: {
      auto a = core::Ipv4Address::parse(text);
      if (!a || len > 32) return bad;
      auto p = core::Ipv4Prefix::make(mask(*a, len), len);
      if (!p) return bad;
      route.prefix = *p;
      break;
    }
    case AddressType::Ipv6: {
      auto a = core::Ipv6Address::parse(text);
      if (!a || len > 128) return bad;
      auto p = core::Ipv6Prefix::make(mask(*a, len), len);
      if (!p) return bad;
      route.prefix = *p;
      break;
    }
    case AddressType::Ethernet:
      return Errc::Unsupported;
  }
  return Record{route};
}

#undef SATP_TRY
#undef SATP_TRY_VOID

}  // namespace

bool anytun_can_take(const RoutePrefix& prefix) noexcept {
  return std::visit(
      [](const auto& p) {
        const unsigned bits = p.length() % 8;
        if (bits == 0) return true;
        const auto last = p.network().bytes()[p.length() / 8];
        const auto host = static_cast<unsigned>(0xffu >> bits);
        return (last | host) != 0xffu;
      },
      prefix);
}

std::vector<RoutePrefix> anytun_safe_split(const RoutePrefix& prefix) {
  if (anytun_can_take(prefix)) return {prefix};
  return std::visit(
      [](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        using Address = std::decay_t<decltype(p.network())>;
        const unsigned index = p.length() / 8;
        const unsigned count = 1u << (8 - p.length() % 8);
        std::vector<RoutePrefix> out;
        out.reserve(count);
        auto bytes = p.network().bytes();
        const unsigned first = bytes[index];
        for (unsigned i = 0; i < count; ++i) {
          bytes[index] = static_cast<std::uint8_t>(first + i);
          // Byte-aligned and built from a network's bytes: make() cannot fail.
          out.emplace_back(P::make(Address{bytes}, (index + 1) * 8).value());
        }
        return out;
      },
      prefix);
}

bool Connection::has_remote() const noexcept {
  return std::visit([](const auto& a) { return !a.is_unspecified(); }, remote_host);
}

Result<std::string> encode(const Record& record) {
  auto archive = std::visit([](const auto& r) { return write_archive(r); }, record);
  if (!archive) return archive.error();
  // Our records are a few hundred bytes; 5 digits can never overflow here.
  std::array<char, kHeaderSize + 1> header{};
  const auto size = archive->size();
  for (std::size_t i = kLengthDigits, n = size; i-- > 0; n /= 10)
    header[i] = static_cast<char>('0' + n % 10);
  header[kLengthDigits] = ' ';
  std::string out;
  out.reserve(kHeaderSize + size);
  out.append(header.data(), kHeaderSize);
  out.append(*archive);
  return out;
}

Result<std::size_t> encode(const Record& record, std::span<char> out) {
  auto frame = encode(record);
  if (!frame) return frame.error();
  if (frame->size() > out.size()) return Errc::NoSpace;
  std::ranges::copy(*frame, out.begin());
  return frame->size();
}

Result<Record> parse(std::string_view archive) noexcept {
  ArchiveReader r{archive};
  auto signature = r.string(kSignature.size(), Errc::BadArchive);
  if (!signature || *signature != kSignature) return Errc::BadArchive;
  auto version = r.number(std::numeric_limits<unsigned>::max(), Errc::BadArchive);
  if (!version) return version.error();
  if (*version != kArchiveVersion) return Errc::Unsupported;
  if (auto p = r.preamble(); !p) return p.error();  // SyncCommand
  // The kind is the archive's own tag: a malformed one means the archive is broken, a
  // well-formed unknown one ("rtp" from anyrtpproxy) is merely not ours.
  auto kind = r.string(kMaxKindText, Errc::BadArchive);
  if (!kind) return kind.error();
  if (*kind == kConnection) return parse_connection(r);
  if (*kind == kRoute) return parse_route(r);
  return Errc::Unsupported;
}

Framer::Framer(FramerLimits limits) noexcept : limits_{limits} {
  limits_.max_record = std::min(limits_.max_record, kMaxArchiveSize);
  limits_.max_buffered = std::max(limits_.max_buffered, limits_.max_record + kHeaderSize);
}

Result<void> Framer::feed(core::Bytes data) {
  if (error_) return *error_;
  if (data.size() > limits_.max_buffered - buffered()) {
    error_ = Errc::NoSpace;
    return *error_;
  }
  // Drop what next() consumed before growing, so the buffer stays within max_buffered.
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  for (auto b : data) buf_.push_back(static_cast<char>(std::to_integer<unsigned char>(b)));
  return {};
}

Result<std::optional<std::string>> Framer::next() {
  if (error_) return *error_;
  const std::string_view in = std::string_view{buf_}.substr(pos_);
  if (in.size() < kHeaderSize) return std::optional<std::string>{};
  // anytun's reader takes the 6 bytes through operator>>, which would also skip blanks and
  // accept a sign; it writes exactly 5 zero-padded digits and a space, and that is all we take.
  std::size_t length = 0;
  for (std::size_t i = 0; i < kLengthDigits; ++i) {
    const char c = in[i];
    if (c < '0' || c > '9') return fail(Errc::BadFrame);
    length = length * 10 + static_cast<std::size_t>(c - '0');
  }
  if (in[kLengthDigits] != ' ') return fail(Errc::BadFrame);
  if (length == 0 || length > limits_.max_record) return fail(Errc::BadFrame);
  if (in.size() - kHeaderSize < length) return std::optional<std::string>{};
  std::string archive{in.substr(kHeaderSize, length)};
  pos_ += kHeaderSize + length;
  return std::optional<std::string>{std::move(archive)};
}

Result<std::optional<std::string>> Framer::fail(Errc e) {
  error_ = e;
  return e;
}

}  // namespace satp::sync
