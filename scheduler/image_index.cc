#include "scheduler/image_index.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "registry/reference.h"

namespace stagefarm::scheduler {

absl::Status ImageIndex::Check(const v1::ImageTag& tag) {
  if (tag.name().empty() || tag.name().size() > 4096) {
    return absl::InvalidArgumentError(
        "image.name: empty or longer than 4096 bytes");
  }
  // A name Docker would refuse (a client speaking the API directly may
  // send one the CLI never would).
  if (absl::Status s = registry::ParseReference(tag.name()).status(); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("image.name: ", s.message()));
  }
  if (!Digest::FromProto(tag.manifest()).ok()) {
    return absl::InvalidArgumentError("image.manifest: not a valid digest");
  }
  return absl::OkStatus();
}

std::vector<v1::ImageTag> ImageIndex::List(const std::string& instance) const {
  std::vector<v1::ImageTag> out;
  auto it = images_.find(instance);
  if (it == images_.end()) return out;
  for (const auto& [name, tag] : it->second) out.push_back(tag);
  return out;
}

bool ImageIndex::Has(const std::string& instance,
                     const std::string& name) const {
  auto it = images_.find(instance);
  return it != images_.end() && it->second.count(name) > 0;
}

std::optional<v1::ImageTag> ImageIndex::Get(const std::string& instance,
                                            const std::string& name) const {
  auto in = images_.find(instance);
  if (in == images_.end()) return std::nullopt;
  auto it = in->second.find(name);
  if (it == in->second.end()) return std::nullopt;
  return it->second;
}

void ImageIndex::Set(const std::string& instance, v1::ImageTag tag) {
  std::string name = tag.name();
  images_[instance][name] = std::move(tag);
}

absl::Status ImageIndex::Remove(const std::string& instance,
                                const std::string& name) {
  auto it = images_.find(instance);
  if (it == images_.end() || it->second.erase(name) == 0) {
    return absl::NotFoundError("no image named \"" + name + "\"");
  }
  return absl::OkStatus();
}

}  // namespace stagefarm::scheduler
