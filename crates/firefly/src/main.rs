fn main() -> std::process::ExitCode {
    pin_mmap_threshold();
    firefly::cli::main()
}

/// glibc raises its mmap threshold after the first large free, after which the 19 MiB
/// argon2 buffers come from the heap and are never given back (RSS grew from 12 MB to
/// ~490 MB under a login load). A fixed threshold keeps large buffers mmapped, so the
/// hashing pool's idle trim really returns them.
fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}
