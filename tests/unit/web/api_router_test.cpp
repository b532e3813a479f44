// Route matching of the API.
#include "web/api_router.hpp"

#include <stdexcept>

#include <catch2/catch.hpp>

namespace {

web::ApiHandler none() {
  return [](web::ApiCall&) -> boost::asio::awaitable<web::HttpResponse> {
    co_return web::HttpResponse{};
  };
}

}  // namespace

TEST_CASE("api_router: literal routes win over parameters and 405 lists the path's methods",
          "[web]") {
  web::ApiRouter router;
  router.add("GET", "/api/config/revisions/{id}", web::Access::Session, none())
      .add("POST", "/api/config/revisions/{id}/revert", web::Access::Admin, none())
      .add("GET", "/api/users", web::Access::Admin, none())
      .add("POST", "/api/users", web::Access::Admin, none())
      .add("GET", "/api/leases/{ipv4}", web::Access::Session, none())
      .add("GET", "/api/leases/count", web::Access::Session, none());

  auto m = router.match("GET", "/api/config/revisions/12");
  REQUIRE(m.route);
  CHECK(m.route->pattern == "/api/config/revisions/{id}");
  CHECK(m.params.at("id") == "12");
  m = router.match("GET", "/api/leases/count");
  REQUIRE(m.route);
  CHECK(m.route->pattern == "/api/leases/count");
  CHECK(router.match("POST", "/api/config/revisions/3/revert").route->access == web::Access::Admin);

  m = router.match("DELETE", "/api/users");
  CHECK_FALSE(m.route);
  CHECK(m.allow == "GET, POST");
  m = router.match("GET", "/api/nothing");
  CHECK_FALSE(m.route);
  CHECK(m.allow.empty());
  CHECK_FALSE(router.match("GET", "/api/leases/").route);
  CHECK_FALSE(router.match("GET", "/api/users/").route);
  CHECK_FALSE(router.match("GET", "api/users").route);
  CHECK_FALSE(router.match("GET", "").route);
}

TEST_CASE("api_router: malformed or repeated routes are programming errors", "[web]") {
  web::ApiRouter router;
  router.add("GET", "/a/{x}", web::Access::Session, none());
  CHECK_THROWS_AS(router.add("GET", "/a/{x}", web::Access::Session, none()), std::logic_error);
  CHECK_THROWS_AS(router.add("GET", "a", web::Access::Session, none()), std::logic_error);
  CHECK_THROWS_AS(router.add("GET", "/b/{}", web::Access::Session, none()), std::logic_error);
  CHECK_THROWS_AS(router.add("GET", "/b/{x}/{x}", web::Access::Session, none()), std::logic_error);
  CHECK_THROWS_AS(router.add("GET", "/b//c", web::Access::Session, none()), std::logic_error);
  CHECK_THROWS_AS(router.add("GET", "/b/x{y}", web::Access::Session, none()), std::logic_error);
}
