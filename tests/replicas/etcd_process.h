// A real etcd cluster for the replicas' tests: Debian's etcd-server, each
// member on free 127.0.0.1 ports with its data on tmpfs (/dev/shm) so that
// its commits cost nothing, stopped and removed when the object dies.
#ifndef PICKER_TESTS_REPLICAS_ETCD_PROCESS_H_
#define PICKER_TESTS_REPLICAS_ETCD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace picker::testing {

class EtcdCluster {
 public:
  // Starts `members` etcd members and waits until the cluster answers; on
  // failure, returns false and says why in *error.
  bool Start(int members, std::string* error);
  ~EtcdCluster();

  // "http://127.0.0.1:P1,http://127.0.0.1:P2,..." for --etcd-endpoints.
  std::string endpoints() const;
  // Stops member `i` for good (SIGKILL), or for a while (SIGSTOP/SIGCONT).
  void Kill(int i);
  void Pause(int i);
  void Resume(int i);
  int size() const { return static_cast<int>(members_.size()); }

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::string data_dir;
    pid_t pid = -1;
  };
  bool Healthy() const;

  std::vector<Member> members_;
};

}  // namespace picker::testing

#endif  // PICKER_TESTS_REPLICAS_ETCD_PROCESS_H_
