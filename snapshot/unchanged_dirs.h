// The directories a step's overlayfs upper directory holds only because
// overlayfs copied them up.
//
// overlayfs copies a directory up as soon as anything is created in it, even
// something removed again before the step ends: the mount points the engine
// removes afterwards (/etc/hosts, /etc/resolv.conf), a temporary file. Such a
// copy, holding nothing and with the mode, owner and extended attributes of
// the directory below, changes nothing, yet written as a layer it is one (an
// 87-byte layer holding only etc/). BuildKit's overlay differ skips it (it
// compares a directory's metadata, not its mtime), so a RUN that changed
// nothing makes no layer there; RemoveUnchangedDirs brings the upper
// directory to the same diff. Thread-compatible: no shared state.
#ifndef STAGEFARM_SNAPSHOT_UNCHANGED_DIRS_H_
#define STAGEFARM_SNAPSHOT_UNCHANGED_DIRS_H_

#include <string>
#include <vector>

namespace stagefarm::snapshot {

// Removes from `upper` (an unmounted overlayfs upper directory) every
// directory that, once the same is done below it, is empty, not opaque, and
// has the type, mode, owner and extended attributes (overlayfs's own aside)
// of the directory `lowers` (bottom to top, as mounted) show at its path.
// The upper directory itself stays. A directory that cannot be read or
// compared is kept, so the diff never loses a change.
void RemoveUnchangedDirs(const std::string& upper,
                         const std::vector<std::string>& lowers);

}  // namespace stagefarm::snapshot

#endif  // STAGEFARM_SNAPSHOT_UNCHANGED_DIRS_H_
