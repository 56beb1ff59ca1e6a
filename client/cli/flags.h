// picker-cli's flags (defined in picker-cli.cc, so that --help lists them).
#ifndef PICKER_CLIENT_CLI_FLAGS_H_
#define PICKER_CLIENT_CLI_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, admin_addr);
ABSL_DECLARE_FLAG(std::string, addr);
ABSL_DECLARE_FLAG(std::string, token_file);
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(bool, tls);
ABSL_DECLARE_FLAG(std::string, output);
ABSL_DECLARE_FLAG(int64_t, deadline_ms);
ABSL_DECLARE_FLAG(bool, dry_run);
ABSL_DECLARE_FLAG(bool, prune);
ABSL_DECLARE_FLAG(std::string, strategy);
ABSL_DECLARE_FLAG(std::string, json);
ABSL_DECLARE_FLAG(std::string, mask);
ABSL_DECLARE_FLAG(std::string, lease_ttl);
ABSL_DECLARE_FLAG(int64_t, weight);
ABSL_DECLARE_FLAG(std::string, zone);
ABSL_DECLARE_FLAG(std::string, hash_key);
ABSL_DECLARE_FLAG(std::string, upstream);
ABSL_DECLARE_FLAG(std::string, source_ip);
ABSL_DECLARE_FLAG(std::string, client_service);
ABSL_DECLARE_FLAG(std::string, hash);
ABSL_DECLARE_FLAG(uint64_t, count);
ABSL_DECLARE_FLAG(bool, release);
ABSL_DECLARE_FLAG(bool, stream);
ABSL_DECLARE_FLAG(std::string, outcome);
ABSL_DECLARE_FLAG(int64_t, latency_ms);
ABSL_DECLARE_FLAG(uint64_t, hold_ms);
ABSL_DECLARE_FLAG(uint64_t, lease_id);
ABSL_DECLARE_FLAG(std::string, service);

#endif  // PICKER_CLIENT_CLI_FLAGS_H_
