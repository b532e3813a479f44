// The routes of the dashboard's API (docs/api.md): method and path pattern to an asynchronous
// handler, with who may call it. Matching is pure; App applies the login, CSRF and role checks
// around the handler it returns.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include "web/auth.hpp"
#include "web/http.hpp"

namespace web {

enum class Access {
  Public,   // no session needed (login, health)
  Session,  // any logged-in user, whatever the method (logout, own password)
  Admin,    // admins only
  // GET routes use Session; every other method on a Session route is still subject to CSRF.
};

// What a handler gets: the request (with `params` set from the pattern), the caller's session
// (null on Public routes) and the JSON body (null when the request had none).
struct ApiCall {
  HttpRequest& request;
  Session* session;
  std::string session_id;  // the cookie's value, to end this session (logout)
  boost::json::value body;
};

using ApiHandler = std::function<boost::asio::awaitable<HttpResponse>(ApiCall&)>;

class ApiRouter {
 public:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // "{name}" kept verbatim
    std::size_t literals = 0;
    Access access = Access::Session;
    ApiHandler handler;
  };

  // Patterns are "/"-separated literal segments or "{name}" segments matching one non-empty
  // segment. A malformed pattern or a duplicate (method, pattern) throws std::logic_error.
  ApiRouter& add(std::string_view method, std::string_view pattern, Access access,
                 ApiHandler handler);

  struct Match {
    const Route* route = nullptr;  // null: no route for this method (see allow)
    Params params;
    // When route is null: the methods the path has ("GET, POST"), empty when no route has it.
    std::string allow;
  };
  // The route with the most literal segments wins, then the one added first.
  Match match(std::string_view method, std::string_view path) const;

  const std::vector<Route>& routes() const noexcept { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace web
