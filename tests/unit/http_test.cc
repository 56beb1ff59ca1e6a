// The HTTP layer without a socket (router, JSON writer, forms, cookies, the
// token guard), then one real civetweb listener on 127.0.0.1.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/numbers.h"
#include "server/http/json.h"
#include "server/http/router.h"
#include "server/http/server.h"
#include "server/http/token_guard.h"

namespace picker::http {
namespace {

using ::testing::HasSubstr;

Request Get(std::string path) {
  Request r;
  r.method = "GET";
  r.path = std::move(path);
  return r;
}

TEST(RouterTest, MatchesPathParametersAndMethods) {
  Router router;
  router.Add("GET", "/upstreams/{name}/targets/{target}", [](const Request& r) {
    return Response::Text(200, r.Param("name") + "|" + r.Param("target"));
  });
  router.Add("DELETE", "/upstreams/{name}/targets/{target}",
             [](const Request&) { return Response::Text(204, ""); });
  Request request = Get("/upstreams/users/targets/10.0.0.1:80");
  Response response = router.Handle(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "users|10.0.0.1:80");

  Request head = Get("/upstreams/users/targets/x");
  head.method = "HEAD";
  EXPECT_EQ(router.Handle(head).status, 200);  // Served by the GET route.

  Request post = Get("/upstreams/users/targets/x");
  post.method = "POST";
  Response refused = router.Handle(post);
  EXPECT_EQ(refused.status, 405);
  EXPECT_THAT(refused.headers,
              ::testing::Contains(std::pair<std::string, std::string>("Allow", "GET, DELETE")));

  Request missing = Get("/upstreams/users");
  Response not_found = router.Handle(missing);
  EXPECT_EQ(not_found.status, 404);
  EXPECT_EQ(not_found.body, R"({"message":"no such path: /upstreams/users"})");
}

TEST(JsonTest, WritesNestedValuesAndEscapes) {
  JsonWriter json;
  json.BeginObject();
  json.Key("s").String("a\"b\\c\n\x01");
  json.Key("list").BeginArray().Number(uint64_t{1}).Number(-2).Number(0.5).Null().Bool(true);
  json.EndArray();
  json.Key("empty").BeginObject().EndObject();
  json.Key("raw").Raw(R"({"x":1})");
  json.Key("nan").Number(std::nan(""));
  json.EndObject();
  EXPECT_EQ(std::move(json).Take(),
            R"({"s":"a\"b\\c\u000a\u0001","list":[1,-2,0.5,null,true],"empty":{},)"
            R"("raw":{"x":1},"nan":null})");
}

TEST(JsonTest, ReplacesBytesThatAreNotUtf8) {
  EXPECT_EQ(JsonQuote("caf\xC3\xA9"), "\"caf\xC3\xA9\"");
  EXPECT_EQ(JsonQuote("a\xFF"
                      "b"),
            "\"a\xEF\xBF\xBD"
            "b\"");
  EXPECT_EQ(JsonQuote("\xE2\x82"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");                  // Cut short.
  EXPECT_EQ(JsonQuote("\xED\xA0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // Surrogate.
}

TEST(FormTest, DecodesFormsAndCookies) {
  auto form = ParseForm("token=a%2Bb+c&empty=&flag&x=1&x=2&bad=%zz");
  EXPECT_EQ(form["token"], "a+b c");
  EXPECT_EQ(form["empty"], "");
  EXPECT_TRUE(form.contains("flag"));
  EXPECT_EQ(form["x"], "2");
  EXPECT_EQ(form["bad"], "%zz");
  EXPECT_EQ(UrlEncode("a b/é"), "a%20b%2F%C3%A9");

  Request r = Get("/");
  r.headers["cookie"] = "other=1; picker_session=abc; picker_session2=x";
  EXPECT_EQ(r.Cookie("picker_session"), "abc");
  EXPECT_EQ(r.Cookie("missing"), "");
}

TEST(TokenGuardTest, BearerOrSessionCookie) {
  TokenGuard open("");
  EXPECT_TRUE(open.Allows(Get("/status")));
  EXPECT_FALSE(open.Matches(""));

  TokenGuard guard("s3cret");
  EXPECT_FALSE(guard.Allows(Get("/status")));
  Request bearer = Get("/status");
  bearer.headers["authorization"] = "Bearer s3cret";
  EXPECT_TRUE(guard.Allows(bearer));
  bearer.headers["authorization"] = "Bearer s3cre";
  EXPECT_FALSE(guard.Allows(bearer));
  bearer.headers["authorization"] = "s3cret";
  EXPECT_FALSE(guard.Allows(bearer));

  const std::string cookie = guard.SessionCookie();
  EXPECT_THAT(cookie, HasSubstr("HttpOnly"));
  EXPECT_THAT(cookie, HasSubstr("SameSite=Strict"));
  EXPECT_THAT(cookie, ::testing::Not(HasSubstr("s3cret")));
  Request browser = Get("/status");
  browser.headers["cookie"] = cookie.substr(0, cookie.find(';'));
  EXPECT_TRUE(guard.Allows(browser));
  browser.headers["cookie"] = "picker_session=0000";
  EXPECT_FALSE(guard.Allows(browser));
  // Another process (another start) draws another session value.
  Request other = Get("/status");
  const std::string other_cookie = TokenGuard("s3cret").SessionCookie();
  other.headers["cookie"] = other_cookie.substr(0, other_cookie.find(';'));
  EXPECT_FALSE(guard.Allows(other));
}

// A raw HTTP/1.0 exchange with the listener; returns the whole answer.
std::string Exchange(const std::string& address, const std::string& request) {
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) return "connect failed";
  (void)!write(fd, request.data(), request.size());
  shutdown(fd, SHUT_WR);  // No more body: civetweb stops waiting for one.
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) answer.append(buffer, n);
  close(fd);
  return answer;
}

TEST(HttpServerTest, ServesRoutesReadsBodiesAndStops) {
  Router router;
  router.Add("POST", "/echo/{what}", [](const Request& r) {
    return Response::Json(201, "{\"what\":" + JsonQuote(r.Param("what")) +
                                   ",\"token\":" + JsonQuote(r.Form()["token"]) + "}")
        .WithHeader("Set-Cookie", "a=1");
  });
  auto server =
      HttpServer::Start({.address = "127.0.0.1:0", .flag = "--test-listen"}, std::move(router));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = (*server)->address();
  const std::string answer = Exchange(
      address,
      "POST /echo/x%20y?q=1 HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n"
      "Content-Length: 9\r\n\r\ntoken=a+b");
  EXPECT_THAT(answer, HasSubstr(" 201 Created"));
  EXPECT_THAT(answer, HasSubstr("Set-Cookie: a=1"));
  EXPECT_THAT(answer, HasSubstr(R"({"what":"x y","token":"a b"})"));
  EXPECT_THAT(Exchange(address, "GET /nope HTTP/1.0\r\n\r\n"), HasSubstr("404 Not Found"));
  EXPECT_THAT(Exchange(address, "POST /echo/x HTTP/1.0\r\nContent-Length: 99999999\r\n\r\n"),
              HasSubstr("413"));

  // The port is taken while it serves: a second listener names it and the flag.
  auto second = HttpServer::Start({.address = address, .flag = "--test-listen"}, Router());
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr(address));
  EXPECT_THAT(second.status().message(), HasSubstr("--test-listen"));

  const auto start = std::chrono::steady_clock::now();
  (*server)->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1900));
  EXPECT_EQ(Exchange(address, "GET / HTTP/1.0\r\n\r\n"), "connect failed");
}

}  // namespace
}  // namespace picker::http
