#include "server/http/token_guard.h"

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace picker::http {

bool ConstantTimeEquals(absl::string_view given, absl::string_view expected) {
  // Walks `expected` whatever `given` is, so the time tells nothing of how
  // much of a guess was right.
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const char g = i < given.size() ? given[i] : 0;
    difference |= static_cast<unsigned char>(g ^ expected[i]);
  }
  return difference == 0;
}

TokenGuard::TokenGuard(std::string token) : token_(std::move(token)) {
  std::random_device random;  // The kernel's generator.
  for (int i = 0; i < 4; ++i) absl::StrAppend(&session_, absl::Hex(random(), absl::kZeroPad8));
}

bool TokenGuard::Matches(absl::string_view given) const {
  return enabled() && ConstantTimeEquals(given, token_);
}

bool TokenGuard::Allows(const Request& request) const {
  if (!enabled()) return true;
  absl::string_view authorization = request.Header("authorization");
  if (absl::ConsumePrefix(&authorization, "Bearer ") && Matches(authorization)) return true;
  const std::string cookie = request.Cookie(kCookieName);
  return !cookie.empty() && ConstantTimeEquals(cookie, session_);
}

std::string TokenGuard::SessionCookie() const {
  return absl::StrCat(kCookieName, "=", session_, "; Path=/; HttpOnly; SameSite=Strict");
}

const char* TokenGuard::Refusal() {
  return "this listener needs the admin token: send 'authorization: Bearer <token>', or log in";
}

}  // namespace picker::http
