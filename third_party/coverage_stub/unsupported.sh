#!/bin/sh
# Coverage tooling is not available offline; `bazel coverage` is unsupported.
echo "stagefarm: coverage tools are not available in the offline build" >&2
exit 0
