// libcurl, loaded when first needed. libcurl.so.4 and the ~30 shared objects
// it links (TLS, Kerberos, LDAP, IDN, ...) cost every start of a short-lived
// program ~12 ms in the dynamic loader, although only ADD <url> (and registry
// transfers) use them. Callers go through the function table returned by
// Curl(); the first call dlopen()s the library. Thread-safe.
#ifndef STAGEFARM_HTTP_CURL_API_H_
#define STAGEFARM_HTTP_CURL_API_H_

#include <curl/curl.h>

#include "absl/status/statusor.h"

namespace stagefarm::http {

struct CurlApi {
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  void (*easy_cleanup)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

// The loaded library (curl_global_init already done), or an error saying
// which library or symbol is missing.
absl::StatusOr<const CurlApi*> Curl();

}  // namespace stagefarm::http

#endif  // STAGEFARM_HTTP_CURL_API_H_
