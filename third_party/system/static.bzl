"""Static linking of the heavy system libraries, for short-lived programs.

Debian ships static archives of gRPC, protobuf, Abseil and RocksDB. A
command-line program that links them dynamically spends ~30 ms of every start
in the dynamic loader (about 90 shared objects to map and relocate); linked
statically it starts in a few milliseconds. A cc_binary that puts
STATIC_CORE_LINKOPTS in its own linkopts gets these archives on the link line
ahead of the -l flags its dependencies carry, so the linker resolves the
symbols from the archives, and --as-needed then drops the shared libraries
nothing refers to any more. Long-running servers and tests keep linking the
shared libraries (faster links, smaller binaries).
"""

STATIC_CORE_LINKOPTS = [
    "-Wl,--as-needed",
    "-Wl,--start-group",
    "-l:librocksdb.a",
    "-l:libarchive.a",
    "-l:libnettle.a",
    "-l:liblzma.a",

    "-l:libsnappy.a",
    "-l:liblz4.a",
    "-l:libbz2.a",
    "-l:libgrpc++.a",
    "-l:libgrpc.a",
    "-l:libaddress_sorting.a",
    "-l:libre2.a",
    "-l:libupb.a",
    "-l:libcares.a",
    "-l:libgpr.a",
    "-l:libprotobuf.a",
    "-l:libabsl_statusor.a",
    "-l:libabsl_status.a",
    "-l:libabsl_cord.a",
    "-l:libabsl_cordz_info.a",
    "-l:libabsl_cord_internal.a",
    "-l:libabsl_cordz_functions.a",
    "-l:libabsl_exponential_biased.a",
    "-l:libabsl_cordz_handle.a",
    "-l:libabsl_bad_optional_access.a",
    "-l:libabsl_strerror.a",
    "-l:libabsl_str_format_internal.a",
    "-l:libabsl_synchronization.a",
    "-l:libabsl_graphcycles_internal.a",
    "-l:libabsl_stacktrace.a",
    "-l:libabsl_symbolize.a",
    "-l:libabsl_debugging_internal.a",
    "-l:libabsl_demangle_internal.a",
    "-l:libabsl_malloc_internal.a",
    "-l:libabsl_time.a",
    "-l:libabsl_civil_time.a",
    "-l:libabsl_strings.a",
    "-l:libabsl_strings_internal.a",
    "-l:libabsl_base.a",
    "-l:libabsl_spinlock_wait.a",
    "-l:libabsl_int128.a",
    "-l:libabsl_throw_delegate.a",
    "-l:libabsl_time_zone.a",
    "-l:libabsl_bad_variant_access.a",
    "-l:libabsl_raw_logging_internal.a",
    "-l:libabsl_log_severity.a",
    "-l:libabsl_raw_hash_set.a",
    "-l:libabsl_hashtablez_sampler.a",
    "-l:libabsl_hash.a",
    "-l:libabsl_city.a",
    "-l:libabsl_low_level_hash.a",
    "-l:libabsl_random_distributions.a",
    "-l:libabsl_random_seed_sequences.a",
    "-l:libabsl_random_internal_pool_urbg.a",
    "-l:libabsl_random_internal_randen.a",
    "-l:libabsl_random_internal_randen_hwaes.a",
    "-l:libabsl_random_internal_randen_hwaes_impl.a",
    "-l:libabsl_random_internal_randen_slow.a",
    "-l:libabsl_random_internal_platform.a",
    "-l:libabsl_random_internal_seed_material.a",
    "-l:libabsl_random_seed_gen_exception.a",
    "-Wl,--end-group",
    # What the archives need, from shared libraries (few and small).
    "-l:libacl.so.1",
    # libarchive's pax writer pulls in every writer, xar's needs libxml2
    # (which brings ICU: kept shared, as ICU's data alone is 30 MB).
    "-l:libxml2.so.2",
    "-lssl",
    "-lcrypto",
    "-lzstd",
    "-lz",
    "-lpthread",
    "-ldl",
    "-lrt",
    "-latomic",
]
