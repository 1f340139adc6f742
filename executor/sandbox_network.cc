#include "executor/sandbox_network.h"

#include <arpa/inet.h>
#include <dirent.h>

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
#include "executor/subprocess.h"

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

std::vector<std::vector<std::string>> TaggedRules(absl::string_view listing,
                                                  absl::string_view comment) {
  std::vector<std::vector<std::string>> out;
  for (absl::string_view line : absl::StrSplit(listing, '\n')) {
    std::vector<std::string> words =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.size() < 2 || words[0] != "-A") continue;
    // iptables -S quotes comments ("stagefarm:sfbr0"); ours have no spaces.
    for (std::string& w : words) {
      if (w.size() >= 2 && w.front() == '"' && w.back() == '"') {
        w = w.substr(1, w.size() - 2);
      }
    }
    bool tagged = false;
    for (size_t i = 0; i + 1 < words.size(); ++i) {
      if (words[i] == "--comment" && words[i + 1] == comment) tagged = true;
    }
    if (!tagged) continue;
    words[0] = "-D";
    out.push_back(std::move(words));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<SandboxNetwork>> SandboxNetwork::Create(
    SandboxNetworkOptions options) {
  RETURN_IF_ERROR(PoolSubnet(options.pool, 0).status());
  ASSIGN_OR_RETURN(std::string ip, FindProgram("ip", "iproute2"));
  ASSIGN_OR_RETURN(std::string iptables, FindProgram("iptables"));
  RETURN_IF_ERROR(MakeDirs(options.lock_dir, 0755));
  std::unique_ptr<SandboxNetwork> net(new SandboxNetwork(
      std::move(options), std::move(ip), std::move(iptables)));
  RETURN_IF_ERROR(net->TakeSlot());
  absl::Status set_up = net->SetUp();
  if (!set_up.ok()) {
    net->CleanSlot(net->subnet_.slot);
    return set_up;
  }
  net->set_up_ = true;
  return net;
}

SandboxNetwork::~SandboxNetwork() {
  if (lock_ != nullptr && lock_->held()) CleanSlot(subnet_.slot);
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

absl::Status SandboxNetwork::Iptables(
    const std::vector<std::string>& args) const {
  std::vector<std::string> all = {"-w"};
  all.insert(all.end(), args.begin(), args.end());
  ASSIGN_OR_RETURN(CommandResult r, RunCommand(iptables_, all));
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("sandbox network: iptables ", absl::StrJoin(args, " "),
                     ": ", absl::StripTrailingAsciiWhitespace(r.output)));
  }
  return absl::OkStatus();
}

std::vector<int> SandboxNetwork::SlotsWithLeftovers() const {
  std::set<int> slots;
  if (DIR* d = opendir(kNetnsDir); d != nullptr) {
    while (struct dirent* e = readdir(d)) {
      int s = SlotOf(e->d_name, "sf", "s");
      if (s >= 0) slots.insert(s);
    }
    closedir(d);
  }
  absl::StatusOr<CommandResult> links =
      RunCommand(ip_, {"-o", "link", "show", "type", "bridge"});
  if (links.ok()) {
    for (absl::string_view line : absl::StrSplit(links->output, '\n')) {
      // "12: sfbr0: <BROADCAST,...> ..."
      std::vector<absl::string_view> f =
          absl::StrSplit(line, absl::ByAnyChar(" :@"), absl::SkipEmpty());
      if (f.size() < 2) continue;
      int s = SlotOf(f[1], "sfbr");
      if (s >= 0) slots.insert(s);
    }
  }
  for (const char* table : {"filter", "nat"}) {
    absl::StatusOr<CommandResult> rules =
        RunCommand(iptables_, {"-w", "-t", table, "-S"});
    if (!rules.ok()) continue;
    for (absl::string_view line : absl::StrSplit(rules->output, '\n')) {
      size_t at = line.find("stagefarm:sfbr");
      if (at == absl::string_view::npos) continue;
      absl::string_view rest = line.substr(at);
      rest = rest.substr(0, rest.find_first_of(" \""));
      int s = SlotOf(rest, "stagefarm:sfbr");
      if (s >= 0) slots.insert(s);
    }
  }
  return std::vector<int>(slots.begin(), slots.end());
}

void SandboxNetwork::CleanSlot(int slot) const {
  const std::string prefix = NetnsPrefix(slot);
  if (DIR* d = opendir(kNetnsDir); d != nullptr) {
    std::vector<std::string> names;
    while (struct dirent* e = readdir(d)) {
      if (SlotOf(e->d_name, "sf", "s") == slot) names.push_back(e->d_name);
    }
    closedir(d);
    for (const std::string& n : names) (void)Ip({"netns", "delete", n});
  }
  const std::string bridge = BridgeName(slot);
  absl::StatusOr<CommandResult> exists =
      RunCommand(ip_, {"link", "show", "dev", bridge});
  if (exists.ok() && exists->exit_code == 0) {
    (void)Ip({"link", "delete", bridge});
  }
  for (const char* table : {"filter", "nat"}) {
    absl::StatusOr<CommandResult> rules =
        RunCommand(iptables_, {"-w", "-t", table, "-S"});
    if (!rules.ok() || rules->exit_code != 0) continue;
    for (std::vector<std::string> del :
         TaggedRules(rules->output, Comment(slot))) {
      del.insert(del.begin(), {"-t", table});
      (void)Iptables(del);
    }
  }
}

absl::Status SandboxNetwork::TakeSlot() {
  int slots = 0;
  RETURN_IF_ERROR(PoolSubnet(options_.pool, 0, &slots).status());
  auto lock_path = [this](int slot) {
    return absl::StrCat(options_.lock_dir, "/slot-", slot, ".lock");
  };
  // What processes that died left behind, in this network namespace.
  for (int slot : SlotsWithLeftovers()) {
    if (slot >= slots) continue;
    FileLock lock(lock_path(slot), FileLock::Mode::kTry);
    if (!lock.held()) continue;  // a live process's
    stagefarm::LogInfo(
        "removing what a stopped process left in the "
        "sandbox network",
        {{"bridge", BridgeName(slot)}});
    CleanSlot(slot);
  }
  for (int slot = 0; slot < slots; ++slot) {
    auto lock =
        std::make_unique<FileLock>(lock_path(slot), FileLock::Mode::kTry);
    if (!lock->held()) continue;
    ASSIGN_OR_RETURN(subnet_, PoolSubnet(options_.pool, slot));
    bridge_ = BridgeName(slot);
    lock_ = std::move(lock);
    CleanSlot(slot);  // namespaces in a mount namespace the sweep missed
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
    stagefarm::LogInfo("turned on IPv4 forwarding for sandbox networks", {});
  }
  RETURN_IF_ERROR(Ip({}, absl::StrCat("link add ", bridge_,
                                      " type bridge\n"
                                      "addr add ",
                                      subnet_.Address(1), "/24 dev ", bridge_,
                                      "\nlink set dev ", bridge_, " up\n")));
  const std::string comment = Comment(subnet_.slot);
  auto tag = [&comment](std::vector<std::string> rule) {
    rule.insert(rule.end(), {"-m", "comment", "--comment", comment});
    return rule;
  };
  RETURN_IF_ERROR(
      Iptables(tag({"-t", "nat", "-A", "POSTROUTING", "-s", subnet_.Cidr(), "!",
                    "-o", bridge_, "-j", "MASQUERADE"})));
  RETURN_IF_ERROR(
      Iptables(tag({"-I", "INPUT", "-i", bridge_, "-j", "REJECT"})));
  // Inserted at the top in reverse: denials, then the accepts.
  RETURN_IF_ERROR(
      Iptables(tag({"-I", "FORWARD", "-o", bridge_, "-m", "conntrack",
                    "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"})));
  RETURN_IF_ERROR(Iptables(tag(
      {"-I", "FORWARD", "-i", bridge_, "!", "-o", bridge_, "-j", "ACCEPT"})));
  for (const std::string& deny : options_.deny) {
    RETURN_IF_ERROR(Iptables(
        tag({"-I", "FORWARD", "-i", bridge_, "-d", deny, "-j", "REJECT"})));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SandboxNetwork::Attachment>>
SandboxNetwork::Attach() {
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
  const std::string name = absl::StrCat(NetnsPrefix(subnet_.slot), host);
  const std::string veth = absl::StrCat("sfv", subnet_.slot, "s", host);
  std::unique_ptr<Attachment> a(
      new Attachment(this, host, name, subnet_.Address(host)));
  RETURN_IF_ERROR(Ip(
      {}, absl::StrCat(
              "netns add ", name, "\nlink add ", veth,
              " type veth peer name eth0 netns ", name, "\nlink set dev ", veth,
              " master ", bridge_, "\nlink set dev ", veth,
              " type bridge_slave isolated on\nlink set dev ", veth, " up\n")));
  RETURN_IF_ERROR(
      Ip({"-n", name}, absl::StrCat("addr add ", a->address(),
                                    "/24 dev eth0\n"
                                    "link set dev eth0 up\nlink set dev lo up\n"
                                    "route add default via ",
                                    subnet_.Address(1), "\n")));
  return a;
}

void SandboxNetwork::Detach(int host, const std::string& name) {
  // Deleting the namespace deletes the veth pair.
  absl::Status s = Ip({"netns", "delete", name});
  if (!s.ok()) {
    stagefarm::LogError("sandbox network: removing a namespace",
                        {{"netns", name}, {"error", std::string(s.message())}});
  }
  absl::MutexLock l(&mu_);
  used_[host] = false;
}

SandboxNetwork::Attachment::~Attachment() { owner_->Detach(host_, name_); }

absl::StatusOr<std::string> SandboxNetwork::ResolvConf() const {
  absl::StatusOr<std::string> host = ReadFileToString(options_.resolv_conf);
  if (!host.ok() && !absl::IsNotFound(host.status())) return host.status();
  return SandboxResolvConf(host.ok() ? *host : "");
}

}  // namespace stagefarm::executor
