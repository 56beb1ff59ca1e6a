#include "server/core/config.h"

namespace picker::core {

const char* StrategyName(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::kRoundRobin:
      return "round_robin";
    case StrategyKind::kLeastRequest:
      return "least_request";
    case StrategyKind::kRingHash:
      return "ring_hash";
    case StrategyKind::kRandom:
      return "random";
    case StrategyKind::kMaglev:
      return "maglev";
  }
  return "unknown";
}

}  // namespace picker::core
