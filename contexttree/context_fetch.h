// The worker's side of context upload: writes a build context stored in the
// CAS as a REAPI tree (contexttree/context_upload.h) into a directory, so the
// build engine can read it as it reads a local context.
#ifndef STAGEFARM_CONTEXTTREE_CONTEXT_FETCH_H_
#define STAGEFARM_CONTEXTTREE_CONTEXT_FETCH_H_

#include <string>

#include "absl/status/status.h"
#include "blobstore/blob_store.h"
#include "common/digest.h"
#include "contexttree/context_upload.h"

namespace stagefarm::contexttree {

// INVALID_ARGUMENT unless `name` may name an entry of a Directory: not
// empty, ".", "..", nor holding "/" or NUL. `where`: the directory's path in
// the tree, for the message. Every reader of trees from the CAS checks
// names with it.
absl::Status CheckEntryName(absl::string_view name, absl::string_view where);

// Writes the tree whose root Directory is `root` into `dest`, which must not
// exist: directories and files with the tree's unix modes (0755/0644 when a
// node has none), symlinks with their targets, every file verified against
// its digest while it streams. The tree is built in a temporary sibling and
// renamed into place, so `dest` appears whole or not at all. A Directory
// naming an entry "", ".", ".." or with a "/" or NUL in it, an unreadable
// message, a name used twice or a tree deeper than 1024 levels is
// INVALID_ARGUMENT; missing blobs are NOT_FOUND.
absl::Status MaterializeTree(BlobStore* blobs, const std::string& ns,
                             const Digest& root, const std::string& dest);

// Brings the existing directory `dest` (created if missing) up to the tree
// `root`: files the tree has and `dest` lacks or holds with other content
// are written (each beside its place and renamed over it), the others are
// left alone; entries only `dest` has stay (a union, as a cache wants).
// With `keep_existing`, only paths `dest` lacks are written (what is there
// wins). `cache` (may be null) saves hashing files it knows.
absl::Status MergeTree(BlobStore* blobs, const std::string& ns,
                       const Digest& root, const std::string& dest,
                       StatCache* cache, bool keep_existing = false);

}  // namespace stagefarm::contexttree

#endif  // STAGEFARM_CONTEXTTREE_CONTEXT_FETCH_H_
