#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "blobstore/blob_files.h"
#include "cachekey/cache_key.h"
#include "common/clock.h"
#include "common/fs_util.h"
#include "common/status_macros.h"
#include "engine/copy.h"
#include "engine/stage_runner.h"
#include "engine/user_db.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/expand.h"
#include "frontend/dockerfile/parser.h"
#include "gitsource/git_source.h"
#include "http/fetch.h"

namespace stagefarm::engine {

bool StageRunner::IsUrl(const std::string& s) {
  return absl::StartsWith(s, "http://") || absl::StartsWith(s, "https://");
}

// Downloads `url` into `dir` (as Docker names it, mode 0600, mtime from
// Last-Modified); checks `checksum` when given. Returns the body digest.
absl::StatusOr<std::string> StageRunner::Download(const Instruction& inst,
                                                  const std::string& url,
                                                  const std::string& dir,
                                                  const std::string& checksum) {
  std::string path = dir + "/" + http::FilenameOfUrl(url);
  auto f = http::Fetch(url, path);
  if (!f.ok()) {
    return absl::Status(f.status().code(),
                        absl::StrCat(At(inst), ": ", f.status().message()));
  }
  if (!checksum.empty() && absl::AsciiStrToLower(checksum) != f->digest) {
    unlink(path.c_str());
    return absl::InvalidArgumentError(
        absl::StrCat(At(inst), ": digest mismatch for ", url, ": expected ",
                     checksum, ", got ", f->digest));
  }
  chmod(path.c_str(), 0600);
  if (f->mtime >= 0) {
    struct timespec times[2] = {{f->mtime, 0}, {f->mtime, 0}};
    utimensat(AT_FDCWD, path.c_str(), times, 0);
  }
  return f->digest;
}

// The sources of a COPY/ADD checked before anything is read: no git
// repositories, URLs only in ADD and not mixed with local sources,
// --checksum only with URLs. Returns how many sources are URLs.
absl::StatusOr<int> StageRunner::CheckCopySources(
    const Instruction& inst, const dockerfile::CopyInst& copy,
    const std::vector<std::string>& sources) {
  int urls = 0;
  int gits = 0;
  for (const std::string& s : sources) {
    if (gitsource::ParseGitRef(s)) {
      ++gits;
    } else {
      urls += IsUrl(s) ? 1 : 0;
    }
  }
  if (gits > 0 && (!copy.is_add || sources.size() != 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        At(inst), ": ",
        copy.is_add ? "ADD of a git repository takes it as its only source"
                    : "COPY does not take git repositories (use ADD)"));
  }
  if (gits > 0) return 0;
  if (urls > 0 && (!copy.is_add || urls != static_cast<int>(sources.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat(At(inst), ": ",
                     copy.is_add ? "ADD cannot mix URLs and local sources"
                                 : "COPY does not take URLs (use ADD)"));
  }
  if (!copy.checksum.empty() && urls == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(At(inst), ": ADD --checksum needs a URL source"));
  }
  return urls;
}

// URL sources: with --checksum the key takes the checksum and nothing is
// downloaded before a cache miss; without, each URL is downloaded now into
// the scratch directory and the key takes its content.
absl::Status StageRunner::PrepareUrls(const Instruction& inst,
                                      const dockerfile::CopyInst& copy,
                                      cachekey::CacheKeyBuilder* kb,
                                      CopySources* in) {
  ASSIGN_OR_RETURN(in->scratch_dir, e_->snapshots_->TempDir("download-"));
  in->urls = in->sources;
  std::vector<std::string> names;
  for (const std::string& url : in->urls) {
    names.push_back(http::FilenameOfUrl(url));
  }
  kb->AddList("urls", in->urls);
  if (!copy.checksum.empty()) {
    if (!absl::StartsWith(copy.checksum, "sha256:") ||
        copy.checksum.size() != 71) {
      return absl::InvalidArgumentError(absl::StrCat(
          At(inst), ": --checksum must be sha256:<64 hex digits>"));
    }
    kb->Add("checksum", absl::AsciiStrToLower(copy.checksum));
  } else {
    for (const std::string& url : in->urls) {
      ASSIGN_OR_RETURN(std::string digest,
                       Download(inst, url, in->scratch_dir, ""));
      kb->Add("content", digest);
    }
    downloaded_ = true;
  }
  in->sources = names;
  in->src.root = in->scratch_dir;
  return absl::OkStatus();
}

// A git source: the commit its ref names goes into the key (so a branch
// that moved runs the step again, and one that did not comes from the
// cache); the checkout waits for a cache miss. --checksum, when given, must
// be that commit.
absl::Status StageRunner::PrepareGit(const Instruction& inst,
                                     const dockerfile::CopyInst& copy,
                                     cachekey::CacheKeyBuilder* kb,
                                     CopySources* in) {
  in->git = gitsource::ParseGitRef(in->sources[0]);
  absl::StatusOr<std::string> commit = gitsource::ResolveCommit(*in->git);
  if (!commit.ok()) {
    return absl::Status(
        commit.status().code(),
        absl::StrCat(At(inst), ": ", commit.status().message()));
  }
  in->commit = *commit;
  if (!copy.checksum.empty() &&
      absl::AsciiStrToLower(copy.checksum) != in->commit) {
    return absl::InvalidArgumentError(
        absl::StrCat(At(inst), ": ", in->git->Redacted(), " is at commit ",
                     in->commit, ", not ", copy.checksum, " (--checksum)"));
  }
  const bool keep = copy.keep_git_dir.value_or(false);
  kb->Add("git", in->git->Redacted()).Add("commit", in->commit);
  kb->Add("subdir", in->git->subdir).Add("keep-git-dir", keep ? 1 : 0);
  ASSIGN_OR_RETURN(in->scratch_dir, e_->snapshots_->TempDir("git-"));
  in->urls = {
      in->git->Redacted() +
      (in->git->ref.empty() && in->git->subdir.empty()
           ? ""
           : absl::StrCat("#", in->git->ref, in->git->subdir.empty() ? "" : ":",
                          in->git->subdir))};
  in->sources = {"checkout"};
  in->src.root = in->scratch_dir;
  return absl::OkStatus();
}

// Heredoc sources (`COPY <<EOF /dest`): each body, expanded unless its name
// was quoted, written to a file of its name in the scratch directory.
absl::Status StageRunner::PrepareHeredocs(const ExpandedStep& step,
                                          cachekey::CacheKeyBuilder* kb,
                                          CopySources* in) {
  const Instruction& inst = *step.instruction;
  ASSIGN_OR_RETURN(in->scratch_dir, e_->snapshots_->TempDir("heredoc-"));
  std::vector<std::string> renamed;
  for (const std::string& s : in->sources) {
    std::string name(absl::StripPrefix(absl::StripPrefix(s, "<<"), "-"));
    name.erase(std::remove(name.begin(), name.end(), '"'), name.end());
    name.erase(std::remove(name.begin(), name.end(), '\''), name.end());
    const dockerfile::Heredoc* h = nullptr;
    for (const auto& d : inst.heredocs) {
      if (d.name == name) h = &d;
    }
    if (h == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(At(inst), ": no heredoc named ", name));
    }
    std::string content = h->content;
    if (h->expand) {
      ASSIGN_OR_RETURN(content, dockerfile::ExpandHeredoc(*h, step.run_env));
    }
    RETURN_IF_ERROR(
        WriteStringToFile(in->scratch_dir + "/" + name, content, 0644));
    renamed.push_back(name);
    kb->Add("heredoc", content);
  }
  in->sources = renamed;
  in->src.root = in->scratch_dir;
  return absl::OkStatus();
}

// Where the sources come from (URLs, heredocs, another stage or image, or
// the context), with what the key needs of them before a cache lookup.
absl::Status StageRunner::PrepareSources(const ExpandedStep& step,
                                         const dockerfile::CopyInst& copy,
                                         cachekey::CacheKeyBuilder* kb,
                                         CopySources* in) {
  bool heredocs = false;
  for (const std::string& s : in->sources) {
    heredocs |= absl::StartsWith(s, "<<");
  }
  if (in->sources.size() == 1 && gitsource::ParseGitRef(in->sources[0])) {
    return PrepareGit(*step.instruction, copy, kb, in);
  }
  if (in->url_count > 0) return PrepareUrls(*step.instruction, copy, kb, in);
  if (heredocs) return PrepareHeredocs(step, kb, in);
  if (!copy.from.empty()) {
    ASSIGN_OR_RETURN(std::string from_key, StageKey(copy.from));
    kb->Add("from", from_key);
    in->src.keep_owners = true;
  } else {
    in->src.root = s_.request->context_dir;
    in->src.ignore = s_.ignore;
  }
  return absl::OkStatus();
}

absl::Status StageRunner::RunCopy(const ExpandedStep& step,
                                  const dockerfile::CopyInst& copy) {
  downloaded_ = false;
  const Instruction& inst = *step.instruction;
  std::string keyword = copy.is_add ? "ADD" : "COPY";
  if (step.words.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(At(inst), ": ", keyword, " requires a destination"));
  }
  CopySources in;
  in.sources.assign(step.words.begin(), step.words.end() - 1);
  std::string dest_word = step.words.back();
  ASSIGN_OR_RETURN(in.url_count, CheckCopySources(inst, copy, in.sources));
  std::string workdir = Workdir();
  bool dir_dest = dest_word.empty() || absl::EndsWith(dest_word, "/") ||
                  dest_word == "." || dest_word == ".." ||
                  absl::EndsWith(dest_word, "/.") ||
                  absl::EndsWith(dest_word, "/..");
  std::string dest = JoinWorkdir(workdir, dest_word);
  if (dir_dest && dest != "/") dest += "/";

  struct RemoveScratch {
    const std::string* dir;
    ~RemoveScratch() {
      if (!dir->empty()) (void)RemoveAll(*dir);
    }
  } remove_scratch{&in.scratch_dir};
  cachekey::CacheKeyBuilder kb = KeyBuilder(step);
  RETURN_IF_ERROR(PrepareSources(step, copy, &kb, &in));
  std::optional<FileMode> mode;
  if (!step.chmod.empty()) {
    auto m = FileMode::Parse(step.chmod);
    if (!m.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(At(inst), ": ", m.status().message()));
    }
    mode = *m;
  }
  kb.AddList("sources", in.sources).Add("dest", dest);
  kb.Add("chown", step.chown).Add("chmod", step.chmod);
  kb.AddList("exclude", copy.excludes).Add("add", copy.is_add ? 1 : 0);
  kb.Add("parents", copy.parents ? 1 : 0);
  kb.Add("user", Cfg().value("User", ""));
  auto failed = [&](const absl::Status& st) {
    return absl::Status(st.code(), absl::StrCat(At(inst), ": ", keyword,
                                                " failed: ", st.message()));
  };
  std::vector<SourceMatch> matches;
  if (copy.from.empty() && in.url_count == 0 && !in.git) {
    auto m = MatchSources(in.src, in.sources, copy.excludes);
    if (!m.ok()) return failed(m.status());
    matches = std::move(*m);
    ASSIGN_OR_RETURN(std::string digest,
                     DigestSources(in.src, matches, copy.excludes));
    kb.Add("content", digest);
  }
  std::string key = KeyOf(kb);
  std::vector<std::string> shown =
      in.url_count > 0 || in.git ? in.urls : in.sources;
  std::string history = absl::StrCat(keyword, " ", absl::StrJoin(shown, " "),
                                     " ", dest_word, " # buildkit");
  ASSIGN_OR_RETURN(std::optional<double> started,
                   Begin(key, history, Display(step)));
  if (!started) return absl::OkStatus();  // from the cache
  if (in.url_count > 0) {
    if (!downloaded_) {
      for (const std::string& url : in.urls) {
        RETURN_IF_ERROR(
            Download(inst, url, in.scratch_dir, copy.checksum).status());
      }
    }
    ASSIGN_OR_RETURN(matches, MatchSources(in.src, in.sources, {}));
  }
  if (in.git) {
    absl::Status st = gitsource::Checkout(
        *in.git, in.commit, copy.keep_git_dir.value_or(false),
        in.scratch_dir + "/work", in.scratch_dir + "/checkout");
    if (!st.ok()) return failed(st);
    ASSIGN_OR_RETURN(matches, MatchSources(in.src, in.sources, {}));
  }
  std::optional<View> view;
  if (!copy.from.empty()) {
    ASSIGN_OR_RETURN(View v, ViewOf(copy.from));
    in.src.root = v.path;
    view = std::move(v);
    auto m = MatchSources(in.src, in.sources, copy.excludes);
    if (!m.ok()) return failed(m.status());
    matches = std::move(*m);
  }
  ASSIGN_OR_RETURN(Rootfs rootfs, MountRootfs());
  CopyOptions options;
  options.dest = dest;
  options.mode = mode;
  options.parents = copy.parents;
  options.unpack_archives = copy.is_add && copy.from.empty() && !in.git &&
                            copy.unpack.value_or(in.url_count == 0);
  if (!step.chown.empty()) {
    ASSIGN_OR_RETURN(UserIds ids,
                     ResolveUser(rootfs.path(), step.chown, false));
    options.uid = ids.uid;
    options.gid = ids.gid;
  }
  absl::Status st =
      CopyInto(in.src, matches, copy.excludes, rootfs.path(), options);
  view.reset();
  if (!st.ok()) return failed(st);
  return Finish(std::move(rootfs), key, history, *started);
}

}  // namespace stagefarm::engine
