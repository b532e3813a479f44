// Lets Catch2 print boost::system::result<T, E> in failed assertions. Boost declares an
// unconstrained operator<< for result, so without this, CHECK(r) fails to compile for any T that
// has no operator<<. Force-included into every test translation unit (tests/CMakeLists.txt).
#pragma once

#include <boost/system/result.hpp>
#include <catch2/catch.hpp>
#include <string>
#include <type_traits>

namespace Catch {

template <typename T, typename E>
struct StringMaker<boost::system::result<T, E>> {
  static std::string convert(const boost::system::result<T, E>& r) {
    if (!r) return "error: " + Detail::stringify(r.error());
    if constexpr (std::is_void_v<T>) {
      return "value";
    } else {
      return "value: " + Detail::stringify(*r);
    }
  }
};

template <>
struct StringMaker<boost::system::error_code> {
  static std::string convert(const boost::system::error_code& ec) {
    return std::string{ec.category().name()} + ":" + std::to_string(ec.value()) + " (" +
           ec.message() + ")";
  }
};

}  // namespace Catch
