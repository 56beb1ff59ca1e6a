#include "server/core/store.h"

namespace picker::core {

absl::StatusOr<std::vector<UpstreamRecord>> MemoryStore::Load() {
  std::lock_guard lock(mu_);
  std::vector<UpstreamRecord> out;
  for (const auto& [name, record] : records_) out.push_back(record);
  return out;
}

absl::Status MemoryStore::Put(const UpstreamRecord& record) {
  std::lock_guard lock(mu_);
  records_[record.config.name] = record;
  return absl::OkStatus();
}

absl::Status MemoryStore::Delete(absl::string_view name) {
  std::lock_guard lock(mu_);
  if (auto it = records_.find(name); it != records_.end()) records_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> MemoryStore::NextEpoch() {
  std::lock_guard lock(mu_);
  return ++epoch_;
}

}  // namespace picker::core
