#include "executor/sandbox_network.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <unistd.h>

#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/subprocess.h"

namespace stagefarm::executor {
namespace {

constexpr int kFirstHost = 2;  // .1 is the bridge
constexpr int kLastHost = 254;
constexpr char kNetnsDir[] = "/run/netns";

std::string Ipv4(uint32_t host_order) {
  return absl::StrCat(host_order >> 24, ".", (host_order >> 16) & 255, ".",
                      (host_order >> 8) & 255, ".", host_order & 255);
}

std::string BridgeName(int slot) { return absl::StrCat("sfbr", slot); }

// `ip -batch` lines removing a sandbox's namespace `sfNsK`: its veth first
// (deleting one end deletes both at once, where a deleted namespace frees
// its devices only when the kernel gets to it, so a new sandbox could find
// the names still taken), then the namespace.
std::string RemoveSandbox(absl::string_view name) {
  return absl::StrCat("link delete sfv", name.substr(2), "\nnetns delete ",
                      name, "\n");
}
std::string NetnsPrefix(int slot) { return absl::StrCat("sf", slot, "s"); }
std::string Comment(int slot) {
  return absl::StrCat("stagefarm:", BridgeName(slot));
}

// The slot a name of ours belongs to ("sfbr3" with prefix "sfbr" -> 3), or
// -1.
int SlotOf(absl::string_view name, absl::string_view prefix,
           absl::string_view suffix_start = "") {
  if (!absl::ConsumePrefix(&name, prefix)) return -1;
  if (!suffix_start.empty()) {
    size_t at = name.find(suffix_start);
    if (at == absl::string_view::npos) return -1;
    name = name.substr(0, at);
  }
  int slot = -1;
  if (name.empty() || !absl::SimpleAtoi(name, &slot) || slot < 0) return -1;
  return slot;
}

}  // namespace

std::string Subnet::Address(int host) const {
  return Ipv4(base + static_cast<uint32_t>(host));
}

std::string Subnet::Cidr() const { return absl::StrCat(Ipv4(base), "/24"); }

absl::StatusOr<Subnet> PoolSubnet(absl::string_view pool, int slot,
                                  int* slots) {
  auto bad = [&pool](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("sandbox address pool \"", pool, "\": ", why));
  };
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(pool, absl::MaxSplits('/', 1));
  int prefix = 0;
  if (parts.second.empty() || !absl::SimpleAtoi(parts.second, &prefix)) {
    return bad("want an IPv4 CIDR such as 10.213.0.0/16");
  }
  in_addr addr;
  if (inet_pton(AF_INET, std::string(parts.first).c_str(), &addr) != 1) {
    return bad("not an IPv4 address");
  }
  if (prefix < 8 || prefix > 24) return bad("the prefix must be /8 to /24");
  const uint32_t base = ntohl(addr.s_addr);
  const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if ((base & ~mask) != 0) return bad("host bits set");
  const int count = 1 << (24 - prefix);
  if (slots != nullptr) *slots = count;
  if (slot < 0 || slot >= count) {
    return bad(absl::StrCat("no slot ", slot, " (it has ", count, ")"));
  }
  Subnet s;
  s.base = base + (static_cast<uint32_t>(slot) << 8);
  s.slot = slot;
  return s;
}

std::string SandboxResolvConf(absl::string_view host) {
  std::string out;
  bool nameserver = false;
  for (absl::string_view line : absl::StrSplit(host, '\n')) {
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (absl::StartsWith(t, "nameserver")) {
      std::vector<absl::string_view> f =
          absl::StrSplit(t, absl::ByAnyChar(" \t"), absl::SkipEmpty());
      if (f.size() < 2) continue;
      absl::string_view a = f[1];
      if (absl::StartsWith(a, "127.") || a == "::1") continue;
      nameserver = true;
    }
    absl::StrAppend(&out, line, "\n");
  }
  while (absl::EndsWith(out, "\n\n")) out.pop_back();
  if (out == "\n") out.clear();
  if (!nameserver) {
    absl::StrAppend(&out, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  }
  return out;
}

std::string DeleteTaggedRules(absl::string_view save,
                              absl::string_view comment) {
  std::string out, table;
  bool table_has = false;
  auto close_table = [&] {
    if (table_has) absl::StrAppend(&out, "COMMIT\n");
    table_has = false;
  };
  const std::string tag = absl::StrCat("--comment \"", comment, "\"");
  const std::string bare = absl::StrCat("--comment ", comment);
  for (absl::string_view line : absl::StrSplit(save, '\n')) {
    if (absl::StartsWith(line, "*")) {
      close_table();
      table = std::string(line);
      continue;
    }
    if (!absl::StartsWith(line, "-A ")) continue;
    const bool tagged =
        absl::StrContains(absl::StrCat(line, " "), absl::StrCat(tag, " ")) ||
        absl::StrContains(absl::StrCat(line, " "), absl::StrCat(bare, " "));
    if (!tagged || table.empty()) continue;
    if (!table_has) absl::StrAppend(&out, table, "\n");
    table_has = true;
    absl::StrAppend(&out, "-D ", line.substr(3), "\n");
  }
  close_table();
  return out;
}

std::string SandboxRules(const Subnet& subnet, absl::string_view bridge,
                         const std::vector<std::string>& deny, bool remove) {
  const std::string tag =
      absl::StrCat(" -m comment --comment stagefarm:", bridge);
  const char* add = remove ? "-D" : "-A";
  const char* insert = remove ? "-D" : "-I";
  std::string out =
      absl::StrCat("*nat\n", add, " POSTROUTING -s ", subnet.Cidr(), " ! -o ",
                   bridge, tag, " -j MASQUERADE\nCOMMIT\n*filter\n");
  absl::StrAppend(&out, insert, " INPUT -i ", bridge, tag, " -j REJECT\n");
  // Inserted at the top in turn: the denials end up above the accepts.
  absl::StrAppend(&out, insert, " FORWARD -o ", bridge,
                  " -m conntrack --ctstate RELATED,ESTABLISHED", tag,
                  " -j ACCEPT\n");
  absl::StrAppend(&out, insert, " FORWARD -i ", bridge, " ! -o ", bridge, tag,
                  " -j ACCEPT\n");
  for (const std::string& d : deny) {
    absl::StrAppend(&out, insert, " FORWARD -i ", bridge, " -d ", d, tag,
                    " -j REJECT\n");
  }
  absl::StrAppend(&out, "COMMIT\n");
  return out;
}

absl::StatusOr<std::unique_ptr<SandboxNetwork>> SandboxNetwork::Create(
    SandboxNetworkOptions options) {
  RETURN_IF_ERROR(PoolSubnet(options.pool, 0).status());
  for (const std::string& d : options.deny) {
    std::string a = d.substr(0, d.find('/'));
    in_addr unused;
    if (a.empty() || inet_pton(AF_INET, a.c_str(), &unused) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sandbox network: deny \"", d, "\" is not an IPv4 address or CIDR"));
    }
  }
  ASSIGN_OR_RETURN(std::string ip, FindProgram("ip", "iproute2"));
  ASSIGN_OR_RETURN(std::string restore,
                   FindProgram("iptables-restore", "iptables"));
  ASSIGN_OR_RETURN(std::string save, FindProgram("iptables-save", "iptables"));
  RETURN_IF_ERROR(MakeDirs(options.lock_dir, 0755));
  std::unique_ptr<SandboxNetwork> net(new SandboxNetwork(
      std::move(options), std::move(ip), std::move(restore), std::move(save)));
  RETURN_IF_ERROR(net->TakeSlot());
  absl::Status set_up = net->SetUp();
  if (!set_up.ok()) {
    net->CleanSlot(net->subnet_.slot, net->List());
    return set_up;
  }
  net->helper_ = std::thread([n = net.get()] { n->Helper(); });
  return net;
}

SandboxNetwork::~SandboxNetwork() {
  if (helper_.joinable()) {
    {
      absl::MutexLock l(&mu_);
      stop_ = true;
    }
    helper_.join();
  }
  if (lock_ == nullptr || !lock_->held()) return;
  // Everything this process made, as it made it: no listing needed.
  std::string batch;
  {
    absl::MutexLock l(&mu_);
    for (const Prepared& p : spares_) {
      absl::StrAppend(&batch, RemoveSandbox(p.name));
    }
    for (const Prepared& p : finished_) {
      absl::StrAppend(&batch, RemoveSandbox(p.name));
    }
    spares_.clear();
    finished_.clear();
  }
  absl::StrAppend(&batch, "link delete ", bridge_, "\n");
  const std::string rules =
      SandboxRules(subnet_, bridge_, options_.deny, /*remove=*/true);
  // Deleting a bridge waits for the kernel (tens of ms): a child does it
  // and the rules, holding the slot's lock until it is done, so that the
  // process can end at once and no one takes the slot before it is clean.
  const std::string base =
      absl::StrCat(options_.lock_dir, "/teardown-", subnet_.slot);
  if (WriteStringToFile(base + ".ip", batch).ok() &&
      WriteStringToFile(base + ".rules", rules).ok() &&
      StartDetached("/bin/sh",
                    {"-c",
                     "\"$1\" -force -batch \"$2\"; \"$3\" -w --noflush "
                     "<\"$4\"; rm -f \"$2\" \"$4\"",
                     "sh", ip_, base + ".ip", restore_, base + ".rules"},
                    lock_->fd())
          .ok()) {
    return;
  }
  LogIfFailed("removing the bridge", Ip({"-force"}, batch));
  LogIfFailed("removing the rules", Restore(rules));
}

void SandboxNetwork::LogIfFailed(absl::string_view what,
                                 const absl::Status& s) const {
  // A daemon logs it; a command's output stays its own (what is left is
  // removed by the next sandbox network on the machine anyway).
  if (s.ok() || !options_.log_cleanup) return;
  stagefarm::LogError(
      absl::StrCat("sandbox network: ", what),
      {{"bridge", bridge_}, {"error", std::string(s.message())}});
}

absl::Status SandboxNetwork::Ip(const std::vector<std::string>& args,
                                absl::string_view batch) const {
  std::vector<std::string> all = args;
  if (!batch.empty()) {
    all.push_back("-batch");
    all.push_back("-");
  }
  ASSIGN_OR_RETURN(CommandResult r, RunCommand(ip_, all, batch));
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("sandbox network: ip ", absl::StrJoin(args, " "),
                     batch.empty() ? "" : absl::StrCat(" (", batch, ")"), ": ",
                     absl::StripTrailingAsciiWhitespace(r.output)));
  }
  return absl::OkStatus();
}

absl::Status SandboxNetwork::Restore(absl::string_view rules) const {
  if (rules.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(CommandResult r,
                   RunCommand(restore_, {"-w", "--noflush"}, rules));
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("sandbox network: iptables-restore (", rules,
                     "): ", absl::StripTrailingAsciiWhitespace(r.output)));
  }
  return absl::OkStatus();
}

SandboxNetwork::Listing SandboxNetwork::List() const {
  Listing l;
  absl::StatusOr<CommandResult> links = RunCommand(ip_, {"-o", "link", "show"});
  if (links.ok()) l.links = std::move(links->output);
  absl::StatusOr<CommandResult> rules = RunCommand(save_, {});
  if (rules.ok() && rules->exit_code == 0) l.rules = std::move(rules->output);
  return l;
}

std::vector<int> SandboxNetwork::SlotsWithLeftovers(
    const Listing& listing) const {
  std::set<int> slots;
  if (DIR* d = opendir(kNetnsDir); d != nullptr) {
    while (struct dirent* e = readdir(d)) {
      int s = SlotOf(e->d_name, "sf", "s");
      if (s >= 0) slots.insert(s);
    }
    closedir(d);
  }
  if (DIR* d = opendir(options_.lock_dir.c_str()); d != nullptr) {
    while (struct dirent* e = readdir(d)) {
      int s = SlotOf(e->d_name, "teardown-", ".");
      if (s >= 0) slots.insert(s);
    }
    closedir(d);
  }
  for (absl::string_view line : absl::StrSplit(listing.links, '\n')) {
    // "12: sfbr0: <BROADCAST,...> ...", "13: sfv0s2@if2: <...> ..."
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" :@"), absl::SkipEmpty());
    if (f.size() < 2) continue;
    int s = SlotOf(f[1], "sfbr");
    if (s < 0) s = SlotOf(f[1], "sfv", "s");
    if (s >= 0) slots.insert(s);
  }
  for (absl::string_view line : absl::StrSplit(listing.rules, '\n')) {
    size_t at = line.find("stagefarm:sfbr");
    if (at == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(at);
    rest = rest.substr(0, rest.find_first_of(" \""));
    int s = SlotOf(rest, "stagefarm:sfbr");
    if (s >= 0) slots.insert(s);
  }
  return std::vector<int>(slots.begin(), slots.end());
}

void SandboxNetwork::CleanSlot(int slot, const Listing& listing) const {
  // The veths first (deleting one deletes its pair at once), then the
  // namespaces, then the bridge.
  std::string veths, bridge_line, namespaces;
  const std::string bridge = BridgeName(slot);
  for (absl::string_view line : absl::StrSplit(listing.links, '\n')) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" :@"), absl::SkipEmpty());
    if (f.size() < 2) continue;
    if (f[1] == bridge) {
      bridge_line = absl::StrCat("link delete ", bridge, "\n");
    } else if (SlotOf(f[1], "sfv", "s") == slot) {
      absl::StrAppend(&veths, "link delete ", f[1], "\n");
    }
  }
  if (DIR* d = opendir(kNetnsDir); d != nullptr) {
    while (struct dirent* e = readdir(d)) {
      if (SlotOf(e->d_name, "sf", "s") == slot) {
        absl::StrAppend(&namespaces, "netns delete ", e->d_name, "\n");
      }
    }
    closedir(d);
  }
  const std::string batch = veths + namespaces + bridge_line;
  // -force: one that fails does not stop the others.
  if (!batch.empty()) LogIfFailed("removing leftovers", Ip({"-force"}, batch));
  LogIfFailed("removing leftover rules",
              Restore(DeleteTaggedRules(listing.rules, Comment(slot))));
  // A teardown that was killed leaves its batches.
  const std::string base = absl::StrCat(options_.lock_dir, "/teardown-", slot);
  unlink((base + ".ip").c_str());
  unlink((base + ".rules").c_str());
}

absl::Status SandboxNetwork::TakeSlot() {
  int slots = 0;
  RETURN_IF_ERROR(PoolSubnet(options_.pool, 0, &slots).status());
  auto lock_path = [this](int slot) {
    return absl::StrCat(options_.lock_dir, "/slot-", slot, ".lock");
  };
  // What processes that died left behind, in this network namespace.
  const Listing listing = List();
  for (int slot : SlotsWithLeftovers(listing)) {
    if (slot >= slots) continue;
    FileLock lock(lock_path(slot), FileLock::Mode::kTry);
    if (!lock.held()) continue;  // a live process's
    if (options_.log_cleanup) {
      stagefarm::LogInfo(
          "removing what a stopped process left in the sandbox network",
          {{"bridge", BridgeName(slot)}});
    }
    CleanSlot(slot, listing);
  }
  for (int slot = 0; slot < slots; ++slot) {
    auto lock =
        std::make_unique<FileLock>(lock_path(slot), FileLock::Mode::kTry);
    if (!lock->held()) continue;
    ASSIGN_OR_RETURN(subnet_, PoolSubnet(options_.pool, slot));
    bridge_ = BridgeName(slot);
    lock_ = std::move(lock);
    absl::MutexLock l(&mu_);
    used_.assign(kLastHost + 1, false);
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("sandbox network: every one of the ", slots, " slots of ",
                   options_.pool, " is taken (", options_.lock_dir, ")"));
}

absl::Status SandboxNetwork::SetUp() {
  // Forwarding is per network namespace; a fresh one has it off.
  ASSIGN_OR_RETURN(std::string forward,
                   ReadFileToString("/proc/sys/net/ipv4/ip_forward"));
  if (absl::StripAsciiWhitespace(forward) != "1") {
    RETURN_IF_ERROR(WriteStringToFile("/proc/sys/net/ipv4/ip_forward", "1\n"));
    if (options_.log_cleanup) {
      stagefarm::LogInfo("turned on IPv4 forwarding for sandbox networks", {});
    }
  }
  RETURN_IF_ERROR(Ip({}, absl::StrCat("link add ", bridge_,
                                      " type bridge\n"
                                      "addr add ",
                                      subnet_.Address(1), "/24 dev ", bridge_,
                                      "\nlink set dev ", bridge_, " up\n")));
  return Restore(SandboxRules(subnet_, bridge_, options_.deny, false));
}

absl::StatusOr<SandboxNetwork::Prepared> SandboxNetwork::Prepare() {
  int host = -1;
  {
    absl::MutexLock l(&mu_);
    for (int h = kFirstHost; h <= kLastHost; ++h) {
      if (!used_[h]) {
        used_[h] = true;
        host = h;
        break;
      }
    }
  }
  if (host < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("sandbox network: ", kLastHost - kFirstHost + 1,
                     " sandboxes already attached to ", bridge_));
  }
  Prepared p{host, absl::StrCat(NetnsPrefix(subnet_.slot), host)};
  const std::string veth = absl::StrCat("sfv", subnet_.slot, "s", host);
  absl::Status s = Ip(
      {}, absl::StrCat(
              "netns add ", p.name, "\nlink add ", veth,
              " type veth peer name eth0 netns ", p.name, "\nlink set dev ",
              veth, " master ", bridge_, "\nlink set dev ", veth,
              " type bridge_slave isolated on\nlink set dev ", veth, " up\n"));
  if (s.ok()) {
    s = Ip({"-n", p.name},
           absl::StrCat("addr add ", subnet_.Address(host),
                        "/24 dev eth0\n"
                        "link set dev eth0 up\nlink set dev lo up\n"
                        "route add default via ",
                        subnet_.Address(1), "\n"));
  }
  if (!s.ok()) {
    (void)Ip({"-force"}, RemoveSandbox(p.name));
    absl::MutexLock l(&mu_);
    used_[host] = false;
    return s;
  }
  return p;
}

absl::StatusOr<std::unique_ptr<SandboxNetwork::Attachment>>
SandboxNetwork::Attach() {
  std::optional<Prepared> p;
  {
    absl::MutexLock l(&mu_);
    if (!spares_.empty()) {
      p = std::move(spares_.front());
      spares_.pop_front();
    }
  }
  if (!p) {
    ASSIGN_OR_RETURN(p, Prepare());
  }
  {
    absl::MutexLock l(&mu_);
    want_spare_ = true;  // the helper makes the next one
  }
  return std::unique_ptr<Attachment>(
      new Attachment(this, p->host, p->name, subnet_.Address(p->host)));
}

void SandboxNetwork::Detach(int host, const std::string& name) {
  // The helper deletes the namespace (and with it the veth pair); the
  // address is free again once it has.
  absl::MutexLock l(&mu_);
  finished_.push_back(Prepared{host, name});
}

bool SandboxNetwork::HelperHasWork() const {
  return stop_ || !finished_.empty() || (want_spare_ && spares_.empty());
}

void SandboxNetwork::Helper() {
  while (true) {
    std::vector<Prepared> remove;
    bool make = false;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(this, &SandboxNetwork::HelperHasWork));
      if (stop_) return;
      remove.assign(finished_.begin(), finished_.end());
      finished_.clear();
      make = remove.empty() && want_spare_ && spares_.empty();
    }
    if (!remove.empty()) {
      std::string batch;
      for (const Prepared& p : remove) {
        absl::StrAppend(&batch, RemoveSandbox(p.name));
      }
      LogIfFailed("removing a sandbox's namespace", Ip({"-force"}, batch));
      absl::MutexLock l(&mu_);
      for (const Prepared& p : remove) used_[p.host] = false;
      continue;
    }
    if (make) {
      absl::StatusOr<Prepared> p = Prepare();
      absl::MutexLock l(&mu_);
      want_spare_ = false;
      if (p.ok()) {
        spares_.push_back(std::move(*p));
      } else {
        LogIfFailed("preparing a namespace", p.status());
      }
    }
  }
}

SandboxNetwork::Attachment::~Attachment() { owner_->Detach(host_, name_); }

absl::StatusOr<std::string> SandboxNetwork::ResolvConf() const {
  absl::StatusOr<std::string> host = ReadFileToString(options_.resolv_conf);
  if (!host.ok() && !absl::IsNotFound(host.status())) return host.status();
  return SandboxResolvConf(host.ok() ? *host : "");
}

}  // namespace stagefarm::executor
