//! The `obol` command: parse the command line, run, map the result to an
//! exit code (0 ok, 1 failure, 2 bad configuration or usage).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tune_allocator();
    let cli = obol::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("obol: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    runtime.spawn(trim_heap_periodically());
    match runtime.block_on(obol::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if let Some(config_error) = e.downcast_ref::<obol::config::ConfigError>() {
                eprintln!("obol: {config_error}");
                return ExitCode::from(2);
            }
            eprintln!("obol: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc's malloc gives every thread that allocates under contention an
/// arena of its own (up to eight per core) and keeps freed memory of each
/// for reuse; a tokio runtime's worker and blocking threads then hold tens
/// of MiB that a mostly idle obol never needs again. Two arenas, and
/// returning freed blocks of 128 KiB or more to the kernel, halved the
/// anonymous memory of a 100,000-item charge-run import (README,
/// Benchmarks). Set before any thread starts; an operator's own
/// `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`
/// wins. musl and other platforms keep their allocator's defaults.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str| std::env::var_os(name).is_some();
        // SAFETY: mallopt only changes allocator parameters; it is called
        // before any other thread exists.
        unsafe {
            if !set("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            }
            if !set("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
            }
        }
    }
}

/// glibc returns freed memory to the kernel only from the top of each
/// arena; pages freed in the middle (a batch of 1,000 charge-run items
/// parsed and stored, a page of events listed) stay resident until
/// `malloc_trim`, which hands every whole free page back. Every ten
/// seconds, on a blocking thread: it walks the free lists of two arenas,
/// well under a millisecond for obol's heap of a few tens of MiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
async fn trim_heap_periodically() {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // SAFETY: malloc_trim only releases free memory; it takes the
        // arenas' own locks and is safe to call from any thread.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}
