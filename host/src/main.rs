fn main() -> std::process::ExitCode {
    return_large_blocks_to_the_system();
    cairn::cli::main()
}

/// glibc's malloc raises its mmap threshold to the size of any large block
/// freed, and from then on serves such blocks from per-thread arenas, which
/// keep the memory once it is freed: a burst of logins (19 MiB of argon2 each,
/// on whichever blocking thread) left hundreds of MiB resident for good.
/// A fixed threshold keeps blocks of 1 MiB and more mapped on their own, so
/// freeing one gives it back.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}
