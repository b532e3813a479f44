// Reading the appliance config document (JSON) into daemons' immutable config structs: strict
// parsing, typed field readers that reject unknown keys, every error named by its JSON pointer.
#pragma once

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/assert/source_location.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "core/address.hpp"

namespace platform {

// sysexits.h EX_CONFIG: the exit code of a daemon whose configuration is invalid.
inline constexpr int kExitConfig = 78;

struct ConfigError {
  std::string path;     // JSON pointer (RFC 6901) of the offending value; "" = whole document
  std::string message;  // what is wrong, without the path

  // "/teps/1/ipv6: invalid IPv6 address (misplaced or repeated '::')"; the whole document is
  // shown as "(document)".
  std::string to_string() const;
  bool operator==(const ConfigError&) const = default;
};

using ConfigErrors = std::vector<ConfigError>;

// A config value or every error found in it (never a partial value). Note that error() returns
// a copy: keep it in a variable before holding references into it.
template <typename T>
using ConfigResult = boost::system::result<T, ConfigErrors>;

// So that ConfigResult<T>::value() on an error throws (a std::runtime_error listing the errors).
[[noreturn]] void throw_exception_from_error(const ConfigErrors& errors,
                                             const boost::source_location& loc);

// Strict JSON parsing: a syntax error is reported with its line and column ("line 3, column 14:
// syntax error"); a key repeated in one object (which a plain parser would silently resolve to
// the last value) is an error at the repeated key's path. Nesting deeper than 32 is rejected.
ConfigResult<boost::json::value> parse_json(std::string_view text);

// JSON pointer of a child: "/teps" + 1 -> "/teps/1"; "~" and "/" in keys escaped as "~0", "~1".
std::string json_pointer_child(std::string_view base, std::string_view key);
std::string json_pointer_child(std::string_view base, std::size_t index);

// Reads one JSON object. Each accessor marks its key as known; when the reader is finished
// (explicitly or at destruction) every key that was never asked for is reported as unknown.
// Errors are appended to a shared list; accessors then return a value-initialised placeholder so
// building can continue and collect every error. The placeholder is never seen by callers of
// read_config()/parse_config(), which return errors instead of a value when any error exists:
// an invalid value is never replaced by a default. Optional accessors return nullopt only for an
// absent key; an explicit null is a type error.
//
// If the value is not an object, one error is recorded and every accessor returns placeholders
// without further errors.
class ObjectReader {
 public:
  ObjectReader(const boost::json::value& value, std::string path, ConfigErrors& errors);
  ~ObjectReader();
  ObjectReader(const ObjectReader&) = delete;
  ObjectReader& operator=(const ObjectReader&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::string path_of(std::string_view key) const { return json_pointer_child(path_, key); }
  // Whether the key is present (does not mark it as known).
  bool has(std::string_view key) const noexcept;
  bool is_object() const noexcept { return object_ != nullptr; }

  std::string string(std::string_view key);
  std::optional<std::string> optional_string(std::string_view key);
  bool boolean(std::string_view key);
  std::optional<bool> optional_boolean(std::string_view key);

  // Integers must be JSON integers (no fraction, no exponent) within [min, max].
  template <std::integral T>
  T integer(std::string_view key, T min = std::numeric_limits<T>::min(),
            T max = std::numeric_limits<T>::max()) {
    if (const auto* v = required(key)) return integer_value<T>(*v, key, min, max);
    return T{};
  }
  template <std::integral T>
  std::optional<T> optional_integer(std::string_view key, T min = std::numeric_limits<T>::min(),
                                    T max = std::numeric_limits<T>::max()) {
    if (const auto* v = optional(key)) return integer_value<T>(*v, key, min, max);
    return std::nullopt;
  }

  core::Ipv4Address ipv4(std::string_view key);
  std::optional<core::Ipv4Address> optional_ipv4(std::string_view key);
  core::Ipv6Address ipv6(std::string_view key);
  std::optional<core::Ipv6Address> optional_ipv6(std::string_view key);
  core::Ipv4Prefix ipv4_prefix(std::string_view key);
  std::optional<core::Ipv4Prefix> optional_ipv4_prefix(std::string_view key);
  core::Ipv6Prefix ipv6_prefix(std::string_view key);
  std::optional<core::Ipv6Prefix> optional_ipv6_prefix(std::string_view key);

  // A string that must be one of the given names; the error lists them. T is not deducible from
  // the braced list, so name it: one_of<Backend>("backend", {{"tun", Backend::Tun}, ...}).
  template <typename T>
  T one_of(std::string_view key, std::initializer_list<std::pair<std::string_view, T>> choices) {
    const auto* v = required(key);
    if (!v) return T{};
    const auto* text = v->if_string();
    if (!text) {
      type_error(key, "a string", *v);
      return T{};
    }
    for (const auto& [name, value] : choices)
      if (name == std::string_view{*text}) return value;
    error(key, choices_message(*text, names_of(choices)));
    return T{};
  }

  // An array of strings (possibly empty).
  std::vector<std::string> strings(std::string_view key);
  std::optional<std::vector<std::string>> optional_strings(std::string_view key);

  // A nested object, read by read(ObjectReader&) -> T.
  template <typename F>
  auto object(std::string_view key, F&& read) -> std::invoke_result_t<F&, ObjectReader&> {
    static const boost::json::value kMissing;
    const auto* v = required(key);
    ObjectReader child{v ? *v : kMissing, path_of(key), *errors_, /*silent=*/v == nullptr};
    return std::invoke(read, child);
  }
  template <typename F>
  auto optional_object(std::string_view key, F&& read)
      -> std::optional<std::invoke_result_t<F&, ObjectReader&>> {
    const auto* v = optional(key);
    if (!v) return std::nullopt;
    ObjectReader child{*v, path_of(key), *errors_};
    return std::invoke(read, child);
  }

  // An array of objects (possibly empty); each element is read by read(ObjectReader&) -> T with
  // paths "/key/0", "/key/1", ...
  template <typename F>
  auto objects(std::string_view key, F&& read)
      -> std::vector<std::invoke_result_t<F&, ObjectReader&>> {
    std::vector<std::invoke_result_t<F&, ObjectReader&>> out;
    const auto* v = required(key);
    if (!v) return out;
    read_objects(*v, key, read, out);
    return out;
  }
  // As objects(), but an absent key gives an empty vector.
  template <typename F>
  auto optional_objects(std::string_view key, F&& read)
      -> std::vector<std::invoke_result_t<F&, ObjectReader&>> {
    std::vector<std::invoke_result_t<F&, ObjectReader&>> out;
    if (const auto* v = optional(key)) read_objects(*v, key, read, out);
    return out;
  }

  // The raw value of a key (marking it known), or nullptr if absent.
  const boost::json::value* raw(std::string_view key);
  // Marks a key as known without reading it (a section another daemon reads).
  void ignore(std::string_view key);

  // Records an error at this object's key (e.g. a cross-field check in a validate step), or at
  // the object itself.
  void error(std::string_view key, std::string message);
  void error_here(std::string message);
  ConfigErrors& errors() noexcept { return *errors_; }

  // Reports unknown keys (once). Called by the destructor if not called before.
  void finish();

 private:
  ObjectReader(const boost::json::value& value, std::string path, ConfigErrors& errors,
               bool silent);

  const boost::json::value* required(std::string_view key);
  const boost::json::value* optional(std::string_view key);
  std::optional<std::string> optional_string_impl(const boost::json::value* v,
                                                  std::string_view key);
  std::optional<std::vector<std::string>> strings_impl(const boost::json::value* v,
                                                       std::string_view key);
  void type_error(std::string_view key, std::string_view expected, const boost::json::value& v);
  // Integer extraction without templates in the .cpp: the value as int64/uint64 or an error.
  bool to_int(const boost::json::value& v, std::string_view key, std::int64_t& s, std::uint64_t& u,
              bool& is_signed);
  void range_error(std::string_view key, std::string min, std::string max, std::string got);
  static std::string choices_message(std::string_view got, const std::vector<std::string>& names);

  template <typename T>
  static std::vector<std::string> names_of(
      std::initializer_list<std::pair<std::string_view, T>> choices) {
    std::vector<std::string> names;
    for (const auto& c : choices) names.emplace_back(c.first);
    return names;
  }

  template <std::integral T>
  T integer_value(const boost::json::value& v, std::string_view key, T min, T max) {
    std::int64_t s = 0;
    std::uint64_t u = 0;
    bool is_signed = false;
    if (!to_int(v, key, s, u, is_signed)) return T{};
    const bool in_range = is_signed
                              ? (std::cmp_greater_equal(s, min) && std::cmp_less_equal(s, max))
                              : (std::cmp_greater_equal(u, min) && std::cmp_less_equal(u, max));
    if (!in_range) {
      range_error(key, std::to_string(min), std::to_string(max),
                  is_signed ? std::to_string(s) : std::to_string(u));
      return T{};
    }
    return is_signed ? static_cast<T>(s) : static_cast<T>(u);
  }

  template <typename F, typename Out>
  void read_objects(const boost::json::value& v, std::string_view key, F& read, Out& out) {
    const auto* array = v.if_array();
    if (!array) {
      type_error(key, "an array", v);
      return;
    }
    const std::string base = path_of(key);
    out.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
      ObjectReader child{(*array)[i], json_pointer_child(base, i), *errors_};
      out.push_back(std::invoke(read, child));
    }
  }

  template <typename T, typename Parse>
  std::optional<T> parsed(const boost::json::value* v, std::string_view key, std::string_view what,
                          Parse parse);

  const boost::json::object* object_ = nullptr;
  std::string path_;
  ConfigErrors* errors_;
  std::vector<std::string> known_;
  bool finished_ = false;
};

// Reads a parsed document: build(ObjectReader& root) -> T. Returns T only if no error was
// recorded (including unknown keys at any level); otherwise every error, in the order found
// (reading order; unknown keys when their object is finished).
template <typename F>
auto read_config(const boost::json::value& document, F&& build)
    -> ConfigResult<std::invoke_result_t<F&, ObjectReader&>> {
  ConfigErrors errors;
  std::optional<std::invoke_result_t<F&, ObjectReader&>> out;
  {
    ObjectReader root{document, "", errors};
    out.emplace(std::invoke(build, root));
  }
  if (!errors.empty()) return {boost::system::in_place_error, std::move(errors)};
  return {boost::system::in_place_value, std::move(*out)};
}

// parse_json() then read_config().
template <typename F>
auto parse_config(std::string_view text, F&& build)
    -> ConfigResult<std::invoke_result_t<F&, ObjectReader&>> {
  auto document = parse_json(text);
  if (!document) return {boost::system::in_place_error, std::move(document).error()};
  return read_config(*document, build);
}

// Reads a whole file (at most max_bytes). Errors are reported as one ConfigError at "" naming
// the file and the reason.
ConfigResult<std::string> read_config_file(const std::filesystem::path& file,
                                           std::size_t max_bytes = 4 * 1024 * 1024);

// One line per error: "<source>: <path>: <message>".
std::string format_config_errors(std::string_view source, const ConfigErrors& errors);

// Prints format_config_errors() to stderr and exits with kExitConfig.
[[noreturn]] void exit_with_config_errors(std::string_view source, const ConfigErrors& errors);

// For mains: read, parse and build, or print every error and exit 78.
template <typename F>
auto load_config_or_exit(const std::filesystem::path& file, F&& build)
    -> std::invoke_result_t<F&, ObjectReader&> {
  auto text = read_config_file(file);
  if (!text) exit_with_config_errors(file.string(), text.error());
  auto config = parse_config(*text, build);
  if (!config) exit_with_config_errors(file.string(), config.error());
  return std::move(*config);
}

}  // namespace platform
