// The config document as the dashboard handles it: JSON pointers into it, the changes between two
// versions, and the redaction of secrets (passwords, verifiers) before a document leaves the box
// and their restoration when an edited document comes back. Pure functions on boost::json values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "platform/config.hpp"

namespace web {

// The value at an RFC 6901 pointer ("" is the whole document), or nullptr when there is none or
// the pointer is malformed (no leading "/", a bad "~" escape, an array index that is not a
// decimal number without leading zeros).
const boost::json::value* json_at(const boost::json::value& document, std::string_view pointer);

struct JsonChange {
  enum class Op { Add, Remove, Replace };
  std::string pointer;
  Op op = Op::Replace;
  std::optional<boost::json::value> old_value;  // Remove, Replace
  std::optional<boost::json::value> new_value;  // Add, Replace
  bool operator==(const JsonChange&) const = default;
};

std::string_view to_string(JsonChange::Op op) noexcept;  // "add", "remove", "replace"

// What changed from `before` to `after`, in document order: objects member by member (members
// of `after` in its order, then those only in `before`), arrays element by element by index
// (the common prefix compared, then the surplus added or removed from the end), anything else
// replaced when not equal. A value whose type changed is replaced as a whole.
std::vector<JsonChange> json_diff(const boost::json::value& before,
                                  const boost::json::value& after);

// [{"pointer", "op", "old"?, "new"?}]
boost::json::array to_json(const std::vector<JsonChange>& changes);

// --- Secrets.

// What a secret looks like in a redacted document.
inline constexpr std::string_view kRedacted = "********";

// Members holding secrets: "password" (a TEP's server password) and "digest_md5" (a user's
// verifier at the DSTM server).
bool is_secret_key(std::string_view key) noexcept;

// A copy with the value of every secret member, at any depth, replaced by kRedacted.
boost::json::value redact(const boost::json::value& document);

// The same for a diff: a change at or under a secret member shows kRedacted for its values, and
// values that contain secret members are redacted as above.
std::vector<JsonChange> redact(std::vector<JsonChange> changes);

// A copy of an edited document in which every string equal to kRedacted is replaced by the value
// at the same pointer in the running document (a secret the operator left alone). Where the
// running document has nothing at that pointer, an error names the pointer.
platform::ConfigResult<boost::json::value> unredact(const boost::json::value& edited,
                                                    const boost::json::value& running);

}  // namespace web
