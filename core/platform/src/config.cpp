// Strict JSON parsing with positions, duplicate-key detection, and the ObjectReader.
#include "platform/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/stream_parser.hpp>

namespace platform {
namespace {

constexpr std::size_t kMaxDepth = 32;

boost::json::parse_options strict_options() {
  boost::json::parse_options opt;
  opt.max_depth = kMaxDepth;
  opt.allow_comments = false;
  opt.allow_trailing_commas = false;
  opt.allow_invalid_utf8 = false;
  return opt;
}

// 1-based line and column (in bytes) of a byte offset.
std::pair<std::size_t, std::size_t> line_column(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const auto before = text.substr(0, offset);
  const std::size_t line =
      1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
  const auto last_nl = before.rfind('\n');
  const std::size_t column = last_nl == std::string_view::npos ? offset + 1 : offset - last_nl;
  return {line, column};
}

// A SAX pass that finds keys repeated within one object; the value-building parser silently
// keeps the last one, which would hide a config mistake.
class DuplicateKeyFinder {
 public:
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);

  using ec_t = boost::system::error_code;
  using sv_t = boost::json::string_view;

  ConfigErrors errors;

  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_object_begin(ec_t&) { return open(false); }
  bool on_object_end(std::size_t, ec_t&) { return close(); }
  bool on_array_begin(ec_t&) { return open(true); }
  bool on_array_end(std::size_t, ec_t&) { return close(); }
  bool on_key_part(sv_t s, std::size_t, ec_t&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(sv_t s, std::size_t, ec_t&) {
    key_.append(s.data(), s.size());
    auto& f = frames_.back();
    if (!f.keys.insert(key_).second)
      errors.push_back(
          {json_pointer_child(f.path, key_), "duplicate key (each key may appear once)"});
    f.key = std::move(key_);
    key_.clear();
    return true;
  }
  bool on_string_part(sv_t, std::size_t, ec_t&) { return true; }
  bool on_string(sv_t, std::size_t, ec_t&) { return scalar(); }
  bool on_number_part(sv_t, ec_t&) { return true; }
  bool on_int64(std::int64_t, sv_t, ec_t&) { return scalar(); }
  bool on_uint64(std::uint64_t, sv_t, ec_t&) { return scalar(); }
  bool on_double(double, sv_t, ec_t&) { return scalar(); }
  bool on_bool(bool, ec_t&) { return scalar(); }
  bool on_null(ec_t&) { return scalar(); }
  bool on_comment_part(sv_t, ec_t&) { return true; }
  bool on_comment(sv_t, ec_t&) { return true; }

 private:
  struct Frame {
    std::string path;
    bool is_array = false;
    std::size_t next_index = 0;
    std::string key;
    std::set<std::string, std::less<>> keys;
  };

  // Path of the value that starts now; advances the enclosing array's index.
  std::string value_path() {
    if (frames_.empty()) return {};
    auto& f = frames_.back();
    if (f.is_array) return json_pointer_child(f.path, f.next_index++);
    return json_pointer_child(f.path, f.key);
  }
  bool open(bool is_array) {
    Frame f;
    f.path = value_path();
    f.is_array = is_array;
    frames_.push_back(std::move(f));
    return true;
  }
  bool close() {
    frames_.pop_back();
    return true;
  }
  bool scalar() {
    if (!frames_.empty() && frames_.back().is_array) ++frames_.back().next_index;
    return true;
  }

  std::vector<Frame> frames_;
  std::string key_;
};

std::string kind_of(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
      return "a number";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "an unknown value";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0u : 1u)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string ConfigError::to_string() const {
  return fmt::format(
      "{}: {}", path.empty() ? std::string_view{"(document)"} : std::string_view{path}, message);
}

void throw_exception_from_error(const ConfigErrors& errors, const boost::source_location&) {
  throw std::runtime_error(format_config_errors("config", errors));
}

std::string json_pointer_child(std::string_view base, std::string_view key) {
  std::string out{base};
  out.reserve(base.size() + key.size() + 1);
  out += '/';
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string json_pointer_child(std::string_view base, std::size_t index) {
  return fmt::format("{}/{}", base, index);
}

ConfigResult<boost::json::value> parse_json(std::string_view text) {
  const auto fail = [&](std::size_t offset, const boost::system::error_code& ec) {
    const auto [line, column] = line_column(text, offset);
    return ConfigResult<boost::json::value>{
        boost::system::in_place_error,
        ConfigErrors{{"", fmt::format("line {}, column {}: {}", line, column, ec.message())}}};
  };
  boost::json::stream_parser parser{{}, strict_options()};
  boost::system::error_code ec;
  // On error, write() returns the offset at which parsing stopped: the position to report.
  const std::size_t consumed = parser.write(text.data(), text.size(), ec);
  if (ec) return fail(consumed, ec);
  parser.finish(ec);
  if (ec) return fail(text.size(), ec);
  auto value = parser.release();

  boost::json::basic_parser<DuplicateKeyFinder> finder{strict_options()};
  finder.write_some(false, text.data(), text.size(), ec);
  if (ec) return fail(0, ec);  // unreachable: the same text parsed above
  if (!finder.handler().errors.empty())
    return {boost::system::in_place_error, std::move(finder.handler().errors)};
  return value;
}

// --- ObjectReader ------------------------------------------------------------------------------

ObjectReader::ObjectReader(const boost::json::value& value, std::string path, ConfigErrors& errors)
    : ObjectReader(value, std::move(path), errors, false) {}

ObjectReader::ObjectReader(const boost::json::value& value, std::string path, ConfigErrors& errors,
                           bool silent)
    : object_{value.if_object()}, path_{std::move(path)}, errors_{&errors} {
  if (!object_ && !silent) errors_->push_back({path_, "expected an object, got " + kind_of(value)});
}

ObjectReader::~ObjectReader() {
  try {
    finish();
  } catch (...) {  // allocation failure while reporting: nothing sensible left to do
  }
}

bool ObjectReader::has(std::string_view key) const noexcept {
  return object_ && object_->find(key) != object_->end();
}

const boost::json::value* ObjectReader::required(std::string_view key) {
  if (!object_) return nullptr;
  known_.emplace_back(key);
  const auto it = object_->find(key);
  if (it == object_->end()) {
    errors_->push_back({path_of(key), "missing required value"});
    return nullptr;
  }
  return &it->value();
}

const boost::json::value* ObjectReader::optional(std::string_view key) {
  if (!object_) return nullptr;
  known_.emplace_back(key);
  const auto it = object_->find(key);
  return it == object_->end() ? nullptr : &it->value();
}

void ObjectReader::type_error(std::string_view key, std::string_view expected,
                              const boost::json::value& v) {
  errors_->push_back({path_of(key), fmt::format("expected {}, got {}", expected, kind_of(v))});
}

void ObjectReader::range_error(std::string_view key, std::string min, std::string max,
                               std::string got) {
  errors_->push_back(
      {path_of(key), fmt::format("must be between {} and {}, got {}", min, max, got)});
}

bool ObjectReader::to_int(const boost::json::value& v, std::string_view key, std::int64_t& s,
                          std::uint64_t& u, bool& is_signed) {
  if (const auto* i = v.if_int64()) {
    s = *i;
    is_signed = true;
    return true;
  }
  if (const auto* n = v.if_uint64()) {
    u = *n;
    is_signed = false;
    return true;
  }
  if (v.is_double()) {
    errors_->push_back(
        {path_of(key), "expected an integer, got a number with a fraction or exponent"});
    return false;
  }
  type_error(key, "an integer", v);
  return false;
}

std::string ObjectReader::choices_message(std::string_view got,
                                          const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += fmt::format("{}'{}'", list.empty() ? "" : ", ", n);
  return fmt::format("'{}' is not one of {}", got, list);
}

std::string ObjectReader::string(std::string_view key) {
  return optional_string_impl(required(key), key).value_or(std::string{});
}

std::optional<std::string> ObjectReader::optional_string(std::string_view key) {
  return optional_string_impl(optional(key), key);
}

std::optional<std::string> ObjectReader::optional_string_impl(const boost::json::value* v,
                                                              std::string_view key) {
  if (!v) return std::nullopt;
  if (const auto* s = v->if_string()) return std::string{*s};
  type_error(key, "a string", *v);
  return std::nullopt;
}

bool ObjectReader::boolean(std::string_view key) {
  const auto* v = required(key);
  if (!v) return false;
  if (const auto* b = v->if_bool()) return *b;
  type_error(key, "a boolean", *v);
  return false;
}

std::optional<bool> ObjectReader::optional_boolean(std::string_view key) {
  const auto* v = optional(key);
  if (!v) return std::nullopt;
  if (const auto* b = v->if_bool()) return *b;
  type_error(key, "a boolean", *v);
  return std::nullopt;
}

template <typename T, typename Parse>
std::optional<T> ObjectReader::parsed(const boost::json::value* v, std::string_view key,
                                      std::string_view what, Parse parse) {
  if (!v) return std::nullopt;
  const auto* s = v->if_string();
  if (!s) {
    type_error(key, fmt::format("{} as a string", what), *v);
    return std::nullopt;
  }
  auto r = parse(std::string_view{*s});
  if (!r) {
    errors_->push_back({path_of(key), fmt::format("invalid {} ({})", what, r.error().message())});
    return std::nullopt;
  }
  return *r;
}

namespace {
constexpr auto kParseV4 = [](std::string_view t) { return core::Ipv4Address::parse(t); };
constexpr auto kParseV6 = [](std::string_view t) { return core::Ipv6Address::parse(t); };
constexpr auto kParseP4 = [](std::string_view t) { return core::Ipv4Prefix::parse(t); };
constexpr auto kParseP6 = [](std::string_view t) { return core::Ipv6Prefix::parse(t); };
}  // namespace

core::Ipv4Address ObjectReader::ipv4(std::string_view key) {
  return parsed<core::Ipv4Address>(required(key), key, "IPv4 address", kParseV4)
      .value_or(core::Ipv4Address{});
}
std::optional<core::Ipv4Address> ObjectReader::optional_ipv4(std::string_view key) {
  return parsed<core::Ipv4Address>(optional(key), key, "IPv4 address", kParseV4);
}
core::Ipv6Address ObjectReader::ipv6(std::string_view key) {
  return parsed<core::Ipv6Address>(required(key), key, "IPv6 address", kParseV6)
      .value_or(core::Ipv6Address{});
}
std::optional<core::Ipv6Address> ObjectReader::optional_ipv6(std::string_view key) {
  return parsed<core::Ipv6Address>(optional(key), key, "IPv6 address", kParseV6);
}
core::Ipv4Prefix ObjectReader::ipv4_prefix(std::string_view key) {
  return parsed<core::Ipv4Prefix>(required(key), key, "IPv4 prefix", kParseP4)
      .value_or(core::Ipv4Prefix{});
}
std::optional<core::Ipv4Prefix> ObjectReader::optional_ipv4_prefix(std::string_view key) {
  return parsed<core::Ipv4Prefix>(optional(key), key, "IPv4 prefix", kParseP4);
}
core::Ipv6Prefix ObjectReader::ipv6_prefix(std::string_view key) {
  return parsed<core::Ipv6Prefix>(required(key), key, "IPv6 prefix", kParseP6)
      .value_or(core::Ipv6Prefix{});
}
std::optional<core::Ipv6Prefix> ObjectReader::optional_ipv6_prefix(std::string_view key) {
  return parsed<core::Ipv6Prefix>(optional(key), key, "IPv6 prefix", kParseP6);
}

std::optional<std::vector<std::string>> ObjectReader::strings_impl(const boost::json::value* v,
                                                                   std::string_view key) {
  if (!v) return std::nullopt;
  const auto* array = v->if_array();
  if (!array) {
    type_error(key, "an array of strings", *v);
    return std::nullopt;
  }
  std::vector<std::string> out;
  out.reserve(array->size());
  bool ok = true;
  for (std::size_t i = 0; i < array->size(); ++i) {
    if (const auto* s = (*array)[i].if_string()) {
      out.emplace_back(*s);
    } else {
      errors_->push_back(
          {json_pointer_child(path_of(key), i), "expected a string, got " + kind_of((*array)[i])});
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::vector<std::string> ObjectReader::strings(std::string_view key) {
  return strings_impl(required(key), key).value_or(std::vector<std::string>{});
}

std::optional<std::vector<std::string>> ObjectReader::optional_strings(std::string_view key) {
  return strings_impl(optional(key), key);
}

const boost::json::value* ObjectReader::raw(std::string_view key) {
  return optional(key);
}

void ObjectReader::ignore(std::string_view key) {
  known_.emplace_back(key);
}

void ObjectReader::error(std::string_view key, std::string message) {
  errors_->push_back({path_of(key), std::move(message)});
}

void ObjectReader::error_here(std::string message) {
  errors_->push_back({path_, std::move(message)});
}

void ObjectReader::finish() {
  if (finished_) return;
  finished_ = true;
  if (!object_) return;
  for (const auto& kv : *object_) {
    const std::string_view key = kv.key();
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    // Suggest the closest known key when it is a likely typo.
    const std::string* best = nullptr;
    std::size_t best_distance = 3;
    for (const auto& k : known_) {
      const auto d = edit_distance(key, k);
      if (d < best_distance && d < std::max(k.size(), key.size())) {
        best = &k;
        best_distance = d;
      }
    }
    errors_->push_back({path_of(key), best ? fmt::format("unknown key (did you mean '{}'?)", *best)
                                           : std::string{"unknown key"}});
  }
}

// --- Files and exit ----------------------------------------------------------------------------

ConfigResult<std::string> read_config_file(const std::filesystem::path& file,
                                           std::size_t max_bytes) {
  const auto fail = [&](std::string reason) {
    return ConfigResult<std::string>{
        boost::system::in_place_error,
        ConfigErrors{{"", fmt::format("cannot read {}: {}", file.string(), reason)}}};
  };
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fail("not a regular file");
  std::string out;
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::strerror(errno));
    if (n == 0) break;
    out.append(chunk, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) return fail(fmt::format("larger than {} bytes", max_bytes));
  }
  return out;
}

std::string format_config_errors(std::string_view source, const ConfigErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += fmt::format("{}: {}\n", source, e.to_string());
  return out;
}

void exit_with_config_errors(std::string_view source, const ConfigErrors& errors) {
  const auto text = format_config_errors(source, errors);
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  std::exit(kExitConfig);
}

}  // namespace platform
