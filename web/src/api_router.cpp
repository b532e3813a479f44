// Route matching for the API.
#include "web/api_router.hpp"

#include <algorithm>
#include <stdexcept>

namespace web {

namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/') return out;
  std::size_t pos = 1;
  for (;;) {
    const auto next = path.find('/', pos);
    out.push_back(path.substr(pos, next == std::string_view::npos ? next : next - pos));
    if (next == std::string_view::npos) return out;
    pos = next + 1;
  }
}

bool is_param(std::string_view segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

ApiRouter& ApiRouter::add(std::string_view method, std::string_view pattern, Access access,
                          ApiHandler handler) {
  if (pattern.empty() || pattern.front() != '/')
    throw std::logic_error("api route must start with '/': " + std::string{pattern});
  Route r{std::string{method}, std::string{pattern}, {}, 0, access, std::move(handler)};
  std::vector<std::string> names;
  for (const auto segment : split_path(pattern)) {
    if (segment.empty()) throw std::logic_error("empty segment in " + r.pattern);
    if (is_param(segment)) {
      const auto name = std::string{segment.substr(1, segment.size() - 2)};
      if (name.empty() || name.find_first_of("{}") != std::string::npos ||
          std::find(names.begin(), names.end(), name) != names.end())
        throw std::logic_error("bad parameter in " + r.pattern);
      names.push_back(name);
    } else {
      if (segment.find_first_of("{}") != std::string_view::npos)
        throw std::logic_error("bad segment in " + r.pattern);
      ++r.literals;
    }
    r.segments.emplace_back(segment);
  }
  for (const auto& existing : routes_)
    if (existing.method == r.method && existing.pattern == r.pattern)
      throw std::logic_error("duplicate api route " + r.method + " " + r.pattern);
  routes_.push_back(std::move(r));
  return *this;
}

ApiRouter::Match ApiRouter::match(std::string_view method, std::string_view path) const {
  const auto segments = split_path(path);
  Match out;
  const Route* best = nullptr;
  Params best_params;
  std::vector<std::string> allowed;
  for (const auto& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    Params params;
    bool ok = true;
    for (std::size_t i = 0; i < segments.size() && ok; ++i) {
      if (is_param(r.segments[i])) {
        if (segments[i].empty())
          ok = false;
        else
          params.emplace(r.segments[i].substr(1, r.segments[i].size() - 2), segments[i]);
      } else {
        ok = r.segments[i] == segments[i];
      }
    }
    if (!ok) continue;
    if (r.method != method) {
      if (std::find(allowed.begin(), allowed.end(), r.method) == allowed.end())
        allowed.push_back(r.method);
      continue;
    }
    if (!best || r.literals > best->literals) {
      best = &r;
      best_params = std::move(params);
    }
  }
  if (best) {
    out.route = best;
    out.params = std::move(best_params);
    return out;
  }
  for (const auto& m : allowed) {
    if (!out.allow.empty()) out.allow += ", ";
    out.allow += m;
  }
  return out;
}

}  // namespace web
