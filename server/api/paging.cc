#include "server/api/paging.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace picker::api {
namespace {

// A token's text before base64: "<kind>1:<index>:<last>"; the 1 is the
// format's version.
constexpr char kVersion = '1';

absl::Status BadToken() {
  return absl::InvalidArgumentError(
      "page_token: not a token this method issued (pass next_page_token as it came, or none "
      "for the first page)");
}

}  // namespace

absl::StatusOr<Page> Page::Read(int32_t page_size, absl::string_view token, PageKind kind) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be >= 0 (0 means ", kDefaultPageSize, "), got ", page_size));
  }
  Page page(kind, page_size == 0 ? kDefaultPageSize : std::min(page_size, kMaxPageSize));
  if (token.empty()) return page;
  std::string text;
  if (!absl::WebSafeBase64Unescape(token, &text) || text.size() < 4 ||
      text[0] != static_cast<char>(kind) || text[1] != kVersion || text[2] != ':') {
    return BadToken();
  }
  const size_t colon = text.find(':', 3);
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(text).substr(3, colon - 3), &page.cursor_.index)) {
    return BadToken();
  }
  page.cursor_.last = text.substr(colon + 1);
  if (page.cursor_.last.empty()) return BadToken();
  return page;
}

Page Page::Whole(PageKind kind) { return Page(kind, kMaxPageSize); }

bool Page::Take(size_t bytes) {
  if (taken_ >= size_) return false;
  // The entry's field tag and length prefix: a few bytes more.
  bytes += 6;
  if (taken_ > 0 && bytes_ + bytes > kMaxPageBytes) return false;
  ++taken_;
  bytes_ += bytes;
  return true;
}

std::string Page::TokenAfter(absl::string_view last, uint64_t index) const {
  return absl::WebSafeBase64Escape(absl::StrCat(std::string(1, static_cast<char>(kind_)),
                                                std::string(1, kVersion), ":", index, ":", last));
}

}  // namespace picker::api
