// Where the health changes that no admin write makes are reported: a
// passive ejection (the data plane), an active check's verdict (the
// prober). The control plane, which implements it, builds the upstream's
// snapshot again with them.
//
//   target->ejected_until_ms.store(until);   // a TargetLive input changed
//   health_events.HealthChanged("users");    // rebuild soon
#ifndef PICKER_SERVER_CORE_HEALTH_EVENTS_H_
#define PICKER_SERVER_CORE_HEALTH_EVENTS_H_

#include <string>

namespace picker::core {

class HealthEvents {
 public:
  virtual ~HealthEvents() = default;
  // The health inputs of `upstream`'s targets changed: build its snapshot
  // again soon. Unknown names are ignored. Thread-safe; never waits for
  // the rebuild.
  virtual void HealthChanged(const std::string& upstream) = 0;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_HEALTH_EVENTS_H_
