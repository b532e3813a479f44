// Private helpers shared by the session implementations.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/overloaded.hpp"
#include "tsp/error.hpp"

namespace tsp::detail {

// Appends an action to an action list. Constructing the alternative in place (rather than
// pushing a temporary variant) also keeps GCC 12 from a false -Wmaybe-uninitialized.
template <typename Variant, typename T>
void emit(std::vector<Variant>& out, T&& action) {
  out.emplace_back(std::in_place_type<std::decay_t<T>>, std::forward<T>(action));
}

inline std::vector<std::byte> to_bytes(std::string_view s) {
  const auto b = core::as_bytes(s);
  return {b.begin(), b.end()};
}

inline std::string_view as_string_view(core::Bytes b) noexcept {
  // Protocol text arrives as bytes; char and std::byte may alias.
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// The tsp::Errc behind an error code produced by this library.
inline Errc errc_of(const boost::system::error_code& ec) noexcept {
  return ec.category() == tsp_category() ? static_cast<Errc>(ec.value()) : Errc::BadXml;
}

}  // namespace tsp::detail
