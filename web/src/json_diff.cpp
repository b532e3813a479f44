// JSON pointers, document diffs and the redaction of secrets.
#include "web/json_diff.hpp"

#include <algorithm>
#include <cstddef>
#include <utility>

#include <boost/json.hpp>

namespace web {

namespace json = boost::json;

namespace {

// One reference token of a pointer with "~1" and "~0" unescaped; nullopt for a bad escape.
std::optional<std::string> unescape_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (std::size_t i = 0; i < token.size(); ++i) {
    if (token[i] != '~') {
      out += token[i];
      continue;
    }
    if (i + 1 >= token.size()) return std::nullopt;
    const char next = token[++i];
    if (next == '0') {
      out += '~';
    } else if (next == '1') {
      out += '/';
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::optional<std::size_t> array_index(std::string_view token) {
  if (token.empty() || token.size() > 9) return std::nullopt;
  if (token.size() > 1 && token[0] == '0') return std::nullopt;
  std::size_t n = 0;
  for (const char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  return n;
}

void diff_into(const json::value& before, const json::value& after, const std::string& pointer,
               std::vector<JsonChange>& out) {
  if (before.is_object() && after.is_object()) {
    const auto& b = before.get_object();
    const auto& a = after.get_object();
    for (const auto& [key, value] : a) {
      const auto child = platform::json_pointer_child(pointer, key);
      if (const auto* old = b.if_contains(key)) {
        diff_into(*old, value, child, out);
      } else {
        out.push_back({child, JsonChange::Op::Add, std::nullopt, value});
      }
    }
    for (const auto& [key, value] : b)
      if (!a.contains(key))
        out.push_back(
            {platform::json_pointer_child(pointer, key), JsonChange::Op::Remove, value, {}});
    return;
  }
  if (before.is_array() && after.is_array()) {
    const auto& b = before.get_array();
    const auto& a = after.get_array();
    const auto common = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < common; ++i)
      diff_into(b[i], a[i], platform::json_pointer_child(pointer, i), out);
    for (std::size_t i = common; i < a.size(); ++i)
      out.push_back(
          {platform::json_pointer_child(pointer, i), JsonChange::Op::Add, std::nullopt, a[i]});
    // Removed from the end backwards, so that applying the changes in order keeps indexes valid.
    for (std::size_t i = b.size(); i > common; --i)
      out.push_back(
          {platform::json_pointer_child(pointer, i - 1), JsonChange::Op::Remove, b[i - 1], {}});
    return;
  }
  if (before != after) out.push_back({pointer, JsonChange::Op::Replace, before, after});
}

void redact_in_place(json::value& v) {
  if (auto* o = v.if_object()) {
    for (auto& [key, member] : *o) {
      if (is_secret_key(key)) {
        member = json::string{kRedacted};
      } else {
        redact_in_place(member);
      }
    }
  } else if (auto* a = v.if_array()) {
    for (auto& e : *a) redact_in_place(e);
  }
}

bool pointer_has_secret(std::string_view pointer) {
  std::size_t pos = 0;
  while (pos < pointer.size()) {
    const auto next = pointer.find('/', pos + 1);
    const auto token =
        pointer.substr(pos + 1, next == std::string_view::npos ? next : next - pos - 1);
    if (const auto key = unescape_token(token); key && is_secret_key(*key)) return true;
    if (next == std::string_view::npos) break;
    pos = next;
  }
  return false;
}

void unredact_into(json::value& v, const json::value& running, const std::string& pointer,
                   platform::ConfigErrors& errors) {
  if (auto* s = v.if_string()) {
    if (*s != kRedacted) return;
    if (const auto* kept = json_at(running, pointer)) {
      v = *kept;
    } else {
      errors.push_back({pointer, "a hidden value with no value to keep: enter the value"});
    }
  } else if (auto* o = v.if_object()) {
    for (auto& [key, member] : *o)
      unredact_into(member, running, platform::json_pointer_child(pointer, key), errors);
  } else if (auto* a = v.if_array()) {
    for (std::size_t i = 0; i < a->size(); ++i)
      unredact_into((*a)[i], running, platform::json_pointer_child(pointer, i), errors);
  }
}

}  // namespace

const json::value* json_at(const json::value& document, std::string_view pointer) {
  const json::value* at = &document;
  if (pointer.empty()) return at;
  if (pointer.front() != '/') return nullptr;
  std::size_t pos = 0;
  while (pos != std::string_view::npos) {
    const auto next = pointer.find('/', pos + 1);
    const auto raw =
        pointer.substr(pos + 1, next == std::string_view::npos ? next : next - pos - 1);
    const auto token = unescape_token(raw);
    if (!token) return nullptr;
    if (const auto* o = at->if_object()) {
      at = o->if_contains(*token);
    } else if (const auto* a = at->if_array()) {
      const auto i = array_index(*token);
      at = i && *i < a->size() ? &(*a)[*i] : nullptr;
    } else {
      return nullptr;
    }
    if (!at) return nullptr;
    pos = next;
  }
  return at;
}

std::string_view to_string(JsonChange::Op op) noexcept {
  switch (op) {
    case JsonChange::Op::Add:
      return "add";
    case JsonChange::Op::Remove:
      return "remove";
    case JsonChange::Op::Replace:
      return "replace";
  }
  return "replace";
}

std::vector<JsonChange> json_diff(const json::value& before, const json::value& after) {
  std::vector<JsonChange> out;
  diff_into(before, after, "", out);
  return out;
}

json::array to_json(const std::vector<JsonChange>& changes) {
  json::array out;
  out.reserve(changes.size());
  for (const auto& c : changes) {
    json::object o{{"pointer", c.pointer}, {"op", to_string(c.op)}};
    if (c.old_value) o["old"] = *c.old_value;
    if (c.new_value) o["new"] = *c.new_value;
    out.push_back(std::move(o));
  }
  return out;
}

bool is_secret_key(std::string_view key) noexcept {
  return key == "password" || key == "digest_md5";
}

json::value redact(const json::value& document) {
  json::value copy = document;
  redact_in_place(copy);
  return copy;
}

std::vector<JsonChange> redact(std::vector<JsonChange> changes) {
  for (auto& c : changes) {
    const bool secret = pointer_has_secret(c.pointer);
    for (auto* v : {&c.old_value, &c.new_value}) {
      if (!*v) continue;
      if (secret) {
        **v = json::string{kRedacted};
      } else {
        redact_in_place(**v);
      }
    }
  }
  return changes;
}

platform::ConfigResult<json::value> unredact(const json::value& edited,
                                             const json::value& running) {
  json::value copy = edited;
  platform::ConfigErrors errors;
  unredact_into(copy, running, "", errors);
  if (!errors.empty()) return {boost::system::in_place_error, std::move(errors)};
  return copy;
}

}  // namespace web
