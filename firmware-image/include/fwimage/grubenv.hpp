// GRUB's environment block (grubenv): the 1024-byte file through which the boot loader and the
// running firmware share the A/B boot state (slots.hpp). GRUB rewrites it in place with
// save_env, so its size never changes:
//   "# GRUB Environment Block\n", then "name=value\n" per variable, then '#' up to 1024 bytes.
// Lines starting with '#' are comments (grub-editenv writes a warning line after the header).
// In values GRUB escapes '\\' and '\n' with a backslash. Parsed strictly (the block sits on a
// partition that a power cut may have torn: a torn block is an error, never half a state).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "fwimage/error.hpp"

namespace fwimage {

inline constexpr std::size_t kGrubenvSize = 1024;

// Variables in block order. Names [A-Za-z0-9_], 1..64; values at most 256 bytes.
using Environment = std::vector<std::pair<std::string, std::string>>;

Result<Environment> parse_grubenv(core::Bytes block);
// BadEnvironment if a name or value is out of bounds or the variables do not fit.
Result<std::array<std::byte, kGrubenvSize>> format_grubenv(const Environment& env);

// The value of `name`, or nullptr.
const std::string* find(const Environment& env, std::string_view name) noexcept;
// Sets `name` (replacing its value in place, or appending it).
void set(Environment& env, std::string_view name, std::string value);

}  // namespace fwimage
