// A private network for each sandbox, as Docker's default bridge network
// gives a container: its own namespace with its own loopback, one address
// behind a bridge, and outbound access through NAT.
//
// A process (a worker, or the CLI's embedded engine) takes one slot of the
// address pool: a /24 (10.213.N.0/24 by default) and a bridge `sfbrN` at
// .1. Each sandbox gets a namespace `sfNsK` (/run/netns/sfNsK, made with
// iproute2), a veth pair whose host end `sfvNsK` is an isolated port of
// the bridge (sandboxes cannot reach each other) and whose other end is
// `eth0` at 10.213.N.K, with a default route through the bridge.
//
// iptables rules, each tagged with the comment `stagefarm:sfbrN`:
//   nat POSTROUTING  -s SUBNET ! -o BRIDGE -j MASQUERADE   (outbound)
//   filter INPUT     -i BRIDGE -j REJECT    (nothing on the host itself,
//                                            on any of its addresses)
//   filter FORWARD   -i BRIDGE -d DENY -j REJECT   (each denied address:
//                                            the farm's own services)
//   filter FORWARD   -i BRIDGE ! -o BRIDGE -j ACCEPT, and replies back
//                    (a FORWARD policy of DROP, as dockerd sets, is kept
//                    for everything else)
// Loopback services of the host are out of reach anyway: a namespace has
// its own loopback.
//
// Nothing outlives the process for long: a sandbox's namespace is deleted
// when its Attachment is (the veth pair goes with it), the bridge and the
// rules when the SandboxNetwork is. Slots are flock(2)ed files under
// `lock_dir`; a process that died (SIGKILL) leaves its slot unlocked, and
// the next SandboxNetwork made on the machine removes whatever a free slot
// left (namespaces, bridge, rules) before it takes one.
//
// Needs root (CAP_NET_ADMIN), `ip` (iproute2) and iptables-restore and
// iptables-save (iptables); each change is one batch of `ip -batch` or
// iptables-restore --noflush, so a process spends a few spawns on its
// bridge and two on each sandbox (made ahead by a helper thread). Turns on
// IPv4 forwarding in its network namespace when it is off. Thread-safe.
#ifndef STAGEFARM_EXECUTOR_SANDBOX_NETWORK_H_
#define STAGEFARM_EXECUTOR_SANDBOX_NETWORK_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/fs_util.h"

namespace stagefarm::executor {

struct SandboxNetworkOptions {
  // IPv4 pool, prefix /8 to /24; one /24 a process.
  std::string pool = "10.213.0.0/16";
  // Where the slots' lock files are. Every process of the machine must use
  // the same directory (or pools that do not overlap).
  std::string lock_dir = "/run/stagefarm/net";
  // Addresses or IPv4 CIDRs no sandbox may reach (the farm's scheduler and
  // CAS, a metadata service), beyond the host itself.
  std::vector<std::string> deny;
  // The host's resolver configuration, the sandboxes' is made from.
  std::string resolv_conf = "/etc/resolv.conf";
  // Log removing what a stopped process left, and cleanup failures
  // (daemons; a CLI command's output stays its own).
  bool log_cleanup = false;
};

// One /24 of a pool.
struct Subnet {
  uint32_t base = 0;  // network address, host order
  int slot = 0;
  std::string Address(int host) const;  // "10.213.N.host"
  std::string Cidr() const;             // "10.213.N.0/24"
};

// The /24 number `slot` of `pool`; INVALID_ARGUMENT for a malformed pool,
// a prefix outside 8..24 or a slot beyond it. `slots` gets how many the
// pool holds.
absl::StatusOr<Subnet> PoolSubnet(absl::string_view pool, int slot,
                                  int* slots = nullptr);

// A sandbox's resolv.conf from the host's: nameservers on loopback (a
// local cache such as systemd-resolved, unreachable from a namespace) are
// dropped; with none left, Google's public resolvers, as Docker does.
std::string SandboxResolvConf(absl::string_view host);

// From `iptables-save` output, iptables-restore input deleting every rule
// tagged with `comment` ("" when there is none).
std::string DeleteTaggedRules(absl::string_view save,
                              absl::string_view comment);

// iptables-restore input adding (or, with `remove`, deleting) the rules of
// a sandbox bridge (the list above).
std::string SandboxRules(const Subnet& subnet, absl::string_view bridge,
                         const std::vector<std::string>& deny, bool remove);

class SandboxNetwork {
 public:
  // A sandbox's namespace, deleted with this object.
  class Attachment {
   public:
    ~Attachment();
    Attachment(const Attachment&) = delete;
    Attachment& operator=(const Attachment&) = delete;
    // For the runtime spec's network namespace.
    const std::string& netns_path() const { return path_; }
    const std::string& address() const { return address_; }

   private:
    friend class SandboxNetwork;
    Attachment(SandboxNetwork* owner, int host, std::string name,
               std::string address)
        : owner_(owner),
          host_(host),
          name_(std::move(name)),
          path_("/run/netns/" + name_),
          address_(std::move(address)) {}
    SandboxNetwork* owner_;
    int host_;
    std::string name_, path_, address_;
  };

  // Removes what dead processes left, takes a slot, makes the bridge and
  // the rules. FAILED_PRECONDITION when `ip` or `iptables` is missing or a
  // command fails (with its output), RESOURCE_EXHAUSTED when every slot is
  // taken.
  static absl::StatusOr<std::unique_ptr<SandboxNetwork>> Create(
      SandboxNetworkOptions options);
  // Removes the bridge, the rules and the namespaces (attachments must be
  // gone first) in a child process that holds the slot until it is done
  // and may outlive this one by a few tens of milliseconds.
  ~SandboxNetwork();

  // A namespace with its address: a spare made in the background when there
  // is one (a helper thread keeps one ready and deletes the namespaces of
  // finished sandboxes, off the steps' path). RESOURCE_EXHAUSTED with 253
  // sandboxes attached.
  absl::StatusOr<std::unique_ptr<Attachment>> Attach();

  // The resolv.conf for sandboxes (SandboxResolvConf of the host's).
  absl::StatusOr<std::string> ResolvConf() const;

  const std::string& bridge() const { return bridge_; }
  const Subnet& subnet() const { return subnet_; }

 private:
  SandboxNetwork(SandboxNetworkOptions options, std::string ip,
                 std::string restore, std::string save)
      : options_(std::move(options)),
        ip_(std::move(ip)),
        restore_(std::move(restore)),
        save_(std::move(save)) {}

  // A namespace made and configured, not yet attached.
  struct Prepared {
    int host = 0;
    std::string name;
  };
  // The links and the iptables rules of this network namespace.
  struct Listing {
    std::string links;  // ip -o link show
    std::string rules;  // iptables-save
  };

  absl::Status TakeSlot();
  absl::Status SetUp();
  absl::StatusOr<Prepared> Prepare();
  void Detach(int host, const std::string& name);
  void Helper();
  bool HelperHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Ip(const std::vector<std::string>& args,
                  absl::string_view batch = "") const;
  absl::Status Restore(absl::string_view rules) const;
  void LogIfFailed(absl::string_view what, const absl::Status& s) const;
  Listing List() const;
  // Removes the namespaces, bridge and rules slot `slot` left in this
  // network namespace (the caller holds the slot).
  void CleanSlot(int slot, const Listing& listing) const;
  // Slots that left something behind: namespaces, bridges or rules.
  std::vector<int> SlotsWithLeftovers(const Listing& listing) const;

  const SandboxNetworkOptions options_;
  const std::string ip_, restore_, save_;
  std::unique_ptr<FileLock> lock_;
  Subnet subnet_;
  std::string bridge_;
  std::thread helper_;
  absl::Mutex mu_;
  std::vector<bool> used_ ABSL_GUARDED_BY(mu_);  // by host number
  std::deque<Prepared> spares_ ABSL_GUARDED_BY(mu_);
  std::vector<Prepared> finished_ ABSL_GUARDED_BY(mu_);
  bool want_spare_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace stagefarm::executor

#endif  // STAGEFARM_EXECUTOR_SANDBOX_NETWORK_H_
