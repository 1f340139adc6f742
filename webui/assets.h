// The web view's pages, built into the binary from webui/assets/
// (embed_assets.sh writes them as C++ at build time): nothing is read from
// disk or fetched at run time.
#ifndef STAGEFARM_WEBUI_ASSETS_H_
#define STAGEFARM_WEBUI_ASSETS_H_

#include "absl/strings/string_view.h"

namespace stagefarm::webui {

struct Asset {
  const char* path;          // "/app.js"
  const char* content_type;  // "text/javascript; charset=utf-8"
  absl::string_view data;
};

// The asset served at `path`, or null.
const Asset* FindAsset(absl::string_view path);

}  // namespace stagefarm::webui

#endif  // STAGEFARM_WEBUI_ASSETS_H_
