// The farm's image index: names to image manifests, per CAS instance, so
// every client of a farm sees the same names (`stagefarm image ls
// --server`, FROM of an image built earlier). Pure: the scheduler keeps it
// under its lock and writes each change to --state first.
#ifndef STAGEFARM_SCHEDULER_IMAGE_INDEX_H_
#define STAGEFARM_SCHEDULER_IMAGE_INDEX_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::scheduler {

class ImageIndex {
 public:
  // INVALID_ARGUMENT naming the field when `tag` cannot be stored: a name
  // empty or over 4096 bytes, a manifest that is not a valid digest.
  static absl::Status Check(const v1::ImageTag& tag);

  // The instance's images by name.
  std::vector<v1::ImageTag> List(const std::string& instance) const;
  bool Has(const std::string& instance, const std::string& name) const;
  // The name's tag, or nullopt.
  std::optional<v1::ImageTag> Get(const std::string& instance,
                                  const std::string& name) const;
  // Adds or replaces the name (Check first).
  void Set(const std::string& instance, v1::ImageTag tag);
  // NOT_FOUND when there is no such name.
  absl::Status Remove(const std::string& instance, const std::string& name);

 private:
  std::map<std::string, std::map<std::string, v1::ImageTag>> images_;
};

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_IMAGE_INDEX_H_
