#include "server/core/changes.h"

#include "gtest/gtest.h"

namespace picker::core {
namespace {

// ApplyChange at `now`, from `current`.
UpstreamRecord Apply(const Change& change, const UpstreamRecord* current, int64_t now) {
  Change prepared = change;
  const Limits limits;
  EXPECT_TRUE(PrepareChange(prepared, limits).ok());
  absl::StatusOr<Mutation> m = ApplyChange(prepared, current, 1, limits, now);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() && m->record ? *m->record : UpstreamRecord{};
}

// Kong's created_at and updated_at: created once, updated when the
// entity's own configuration changes (not its targets', not a health mark).
TEST(ChangesTest, TimesFollowKongsCreatedAtAndUpdatedAt) {
  UpstreamConfig config;
  config.name = "users";
  const UpstreamRecord created = Apply(CreateUpstream{config}, nullptr, 100);
  EXPECT_EQ(created.times, (Timestamps{100, 100}));

  const UpstreamRecord with_target =
      Apply(PutTarget{"users", {.address = "10.0.0.1:80"}}, &created, 200);
  EXPECT_EQ(with_target.times, (Timestamps{100, 100}));
  ASSERT_EQ(with_target.targets.size(), 1u);
  EXPECT_EQ(with_target.targets[0].times, (Timestamps{200, 200}));

  const UpstreamRecord marked =
      Apply(SetTargetHealth{"users", "10.0.0.1:80", HealthOverride::kUnhealthy}, &with_target, 300);
  EXPECT_EQ(marked.targets[0].times, (Timestamps{200, 200}));

  const UpstreamRecord reweighted =
      Apply(PutTarget{"users", {.address = "10.0.0.1:80", .weight = 5}}, &marked, 400);
  EXPECT_EQ(reweighted.targets[0].times, (Timestamps{200, 400}));

  UpstreamConfig changed = config;
  changed.lease_ttl = Millis(5000);
  const UpstreamRecord updated = Apply(UpdateUpstream{changed}, &reweighted, 500);
  EXPECT_EQ(updated.times, (Timestamps{100, 500}));
  EXPECT_EQ(updated.targets[0].times, (Timestamps{200, 400}));
  // The same configuration again changes nothing, so a re-applied file
  // writes nothing.
  EXPECT_EQ(Apply(UpdateUpstream{changed}, &updated, 600), updated);

  // A replaced target set: those that stay keep their times.
  const UpstreamRecord replaced =
      Apply(ReplaceTargets{"users",
                           {{.address = "10.0.0.1:80", .weight = 5}, {.address = "10.0.0.2:80"}}},
            &updated, 700);
  ASSERT_EQ(replaced.targets.size(), 2u);
  EXPECT_EQ(replaced.targets[0].times, (Timestamps{200, 400}));
  EXPECT_EQ(replaced.targets[1].times, (Timestamps{700, 700}));
}

}  // namespace
}  // namespace picker::core
