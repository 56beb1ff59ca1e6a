// Pages of the admin reads that list (AIP-158): ListUpstreams, ListTargets,
// GetUpstreamHealth, and the answer of ReplaceTargets. Every answer fits a
// default gRPC client, which accepts 4 MiB: a page holds at most page_size
// entries and ends before it would pass kMaxPageBytes.
//
//   absl::StatusOr<PageRequest> page = ReadPage(request.page_size(),
//                                               request.page_token(), kTargets);
//   for (size_t i = StartOf...; ...; ++i) if (!page->Fits(entry_bytes)) break;
//
// Tokens are opaque to clients (URL-safe base64) and carry the last entry
// a page answered: an upstream's name, or a target's address and position,
// so that the next page starts after it even if entries changed between.
#ifndef PICKER_SERVER_API_PAGING_H_
#define PICKER_SERVER_API_PAGING_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace picker::api {

inline constexpr int32_t kDefaultPageSize = 100;
inline constexpr int32_t kMaxPageSize = 1000;
// Under the 4 MiB default of gRPC clients, with room for the answer's other
// fields and framing.
inline constexpr size_t kMaxPageBytes = 3 << 20;

// What a token points after.
enum class PageKind : char { kUpstreams = 'u', kTargets = 't' };

struct PageCursor {
  std::string last;    // The last name or address answered; empty = first page.
  uint64_t index = 0;  // Targets: the position after `last` when it was answered.
};

// The entries one answer may take, and the bytes they have taken.
class Page {
 public:
  // `page_size` as the request says (0 = default, above the most = the
  // most, negative = INVALID_ARGUMENT); `token` empty or one this server
  // issued for `kind` (INVALID_ARGUMENT otherwise).
  static absl::StatusOr<Page> Read(int32_t page_size, absl::string_view token, PageKind kind);
  // The page of a ReplaceTargets answer: the most entries, from the start.
  static Page Whole(PageKind kind);

  const PageCursor& cursor() const { return cursor_; }
  // True if one more entry of `bytes` (serialized) fits; if so it is
  // counted. The first entry always fits.
  bool Take(size_t bytes);

  // The token that continues after `last` (at `index`, for targets).
  std::string TokenAfter(absl::string_view last, uint64_t index = 0) const;

 private:
  Page(PageKind kind, int32_t size) : kind_(kind), size_(size) {}
  PageKind kind_;
  int32_t size_;
  PageCursor cursor_;
  int32_t taken_ = 0;
  size_t bytes_ = 0;
};

// Appends entries `start`, `start + 1`, ... (below `count`) with `add(i)`,
// which returns the entry's serialized size, while `page` takes them; the
// entry it does not take is taken back with `remove_last()`. Returns the
// index after the last entry kept.
template <typename Add, typename RemoveLast>
size_t FillPage(Page& page, size_t start, size_t count, Add add, RemoveLast remove_last) {
  size_t i = start;
  for (; i < count; ++i) {
    if (!page.Take(add(i))) {
      remove_last();
      break;
    }
  }
  return i;
}

}  // namespace picker::api

#endif  // PICKER_SERVER_API_PAGING_H_
