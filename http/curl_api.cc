#include "http/curl_api.h"

#include <dlfcn.h>

#include <mutex>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace stagefarm::http {
namespace {

constexpr char kLibrary[] = "libcurl.so.4";

absl::StatusOr<CurlApi> Load() {
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load ", kLibrary,
                     " (install libcurl4): ", why ? why : "unknown error"));
  }
  absl::Status missing;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
        dlsym(lib, name));
    if (fn == nullptr && missing.ok()) {
      missing = absl::FailedPreconditionError(
          absl::StrCat(kLibrary, " has no symbol ", name));
    }
  };
  CurlApi api{};
  CURLcode (*global_init)(long) = nullptr;
  sym(global_init, "curl_global_init");
  sym(api.easy_init, "curl_easy_init");
  sym(api.easy_setopt, "curl_easy_setopt");
  sym(api.easy_perform, "curl_easy_perform");
  sym(api.easy_getinfo, "curl_easy_getinfo");
  sym(api.easy_cleanup, "curl_easy_cleanup");
  sym(api.easy_strerror, "curl_easy_strerror");
  sym(api.slist_append, "curl_slist_append");
  sym(api.slist_free_all, "curl_slist_free_all");
  if (!missing.ok()) return missing;
  // The library stays loaded for the life of the process.
  CURLcode rc = global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("curl_global_init failed: ", api.easy_strerror(rc)));
  }
  return api;
}

}  // namespace

absl::StatusOr<const CurlApi*> Curl() {
  static std::once_flag once;
  static absl::StatusOr<CurlApi>* loaded = nullptr;
  std::call_once(once, [] { loaded = new absl::StatusOr<CurlApi>(Load()); });
  if (!loaded->ok()) return loaded->status();
  return &loaded->value();
}

}  // namespace stagefarm::http
