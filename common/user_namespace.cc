#include "common/user_namespace.h"

#include <fstream>
#include <string>

namespace stagefarm {

bool InUserNamespace() {
  static const bool inside = [] {
    std::ifstream in("/proc/self/uid_map");
    std::string inside_id, outside_id, count, more;
    if (!(in >> inside_id >> outside_id >> count)) return false;
    return inside_id != "0" || outside_id != "0" || count != "4294967295" ||
           static_cast<bool>(in >> more);
  }();
  return inside;
}

}  // namespace stagefarm
