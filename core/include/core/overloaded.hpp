// A visitor from lambdas, for std::visit over the variants of actions and events:
//   std::visit(core::Overloaded{[](const A&) {...}, [](const auto&) {...}}, v);
#pragma once

namespace core {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace core
