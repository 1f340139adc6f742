// Where two images differ: for a build that was not reproducible, the
// first layer whose files differ and the first file in it (its content,
// mode, owner, time, link target, or present in one only); else the first
// field of the configs that differs; else how the layers were compressed.
// Thread-safe as the ImageStore is.
#ifndef STAGEFARM_IMAGE_IMAGE_DIFF_H_
#define STAGEFARM_IMAGE_IMAGE_DIFF_H_

#include <string>

#include "absl/status/statusor.h"
#include "image/image_store.h"

namespace stagefarm::image {

// One sentence ("layer 3 of 4 (RUN date > /built): /built: content
// differs"); "the images are the same" when the manifests are.
absl::StatusOr<std::string> FirstDifference(ImageStore* store,
                                            const Digest& first,
                                            const Digest& second);

}  // namespace stagefarm::image

#endif  // STAGEFARM_IMAGE_IMAGE_DIFF_H_
