// libFuzzer target: arbitrary bytes as everything a registry may answer,
// through the client's pure parsers: an error body, a token answer, a
// WWW-Authenticate challenge, a manifest or index under each Content-Type,
// and (split at the first NUL byte) a manifest and its image config. Any
// input must give a value or a status, never an exception or a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "image/oci.h"
#include "registry/auth.h"
#include "registry/responses.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stagefarm;
  const std::string input(reinterpret_cast<const char*>(data), size);
  (void)registry::ParseErrorBody(input);
  (void)registry::ParseTokenAnswer(input);
  (void)registry::ParseChallenge(input);
  for (const char* type :
       {"", image::kMediaTypeIndex, image::kMediaTypeDockerManifestList,
        image::kMediaTypeManifest}) {
    auto m = registry::ParseManifestAnswer(input, type);
    if (m.ok()) (void)image::CheckLayerCount(m->layers.size(), "fuzz");
  }
  auto doc = image::ParseJson(input, "fuzz");
  if (doc.ok()) {
    (void)image::IsIndex(*doc);
    (void)image::ParseIndex(*doc);
    (void)image::IndexManifests(*doc);
    (void)image::ParseManifestLayers(*doc);
    (void)image::ParseDescriptor(*doc, "fuzz");
    platform::Platform p;
    (void)image::ConfigPlatform(*doc, &p);
  }
  const size_t nul = input.find('\0');
  if (nul != std::string::npos) {
    (void)image::ParseImage(input.substr(0, nul), input.substr(nul + 1));
  }
  return 0;
}
