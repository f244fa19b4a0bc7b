/// Rust's allocations go to jemalloc. With glibc's malloc the two runtime threads took
/// turns on each other's arena locks (memory allocated on one thread and freed on the
/// other, as tokio moves tasks): about one futex call per relayed request, and 10-15%
/// more CPU per request under load (bench/README.md). jemalloc frees such memory
/// without a shared lock. C code (SQLite) keeps glibc's malloc, which the settings
/// below still tune.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts (`_RJEM_MALLOC_CONF` in the environment
/// overrides them): two arenas for two cores; a background thread that gives freed pages
/// back after half a second; small per-thread caches (4 KiB objects at most, 32 of a
/// size), since every thread keeps its cache while idle. With jemalloc's defaults RSS
/// peaked at 62 MB in bench/relay.py and stayed at 50 MB after; with these, 52 and 41.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 112] = b"background_thread:true,narenas:2,dirty_decay_ms:500,muzzy_decay_ms:0,tcache_max:4096,tcache_nslots_small_max:32\0";

fn main() -> std::process::ExitCode {
    pin_mmap_threshold();
    trim_heap_periodically();
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

/// glibc keeps what a burst of requests freed inside its per-thread arenas; only the top
/// of the main heap shrinks by itself. Every few seconds `malloc_trim` hands free pages
/// back to the system (a few milliseconds of work at most), so after load the resident
/// size comes back near idle (bench/relay.py: 49 MB five seconds after its full run
/// without it, against 38 MB idle).
fn trim_heap_periodically() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new().name("firefly-trim".into()).spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_secs(3));
            // SAFETY: malloc_trim takes the allocator's own locks; it is safe at any time.
            unsafe {
                libc::malloc_trim(0);
            }
        });
        // Without the thread memory is only given back less often; not a reason to stop.
        drop(spawned);
    }
}
