//! The daemon's memory allocator: jemalloc, which gives freed pages back to the system over
//! time and keeps fragmentation low under many threads, where the system allocator's
//! per-thread arenas let a long-running daemon's resident memory creep up. It also serves
//! `malloc` itself (`unprefixed_malloc_on_supported_platforms`), so SQLite's page cache and
//! statements, which are C, are in its figures too. Those figures (bytes allocated, bytes
//! resident) are exported at `/metrics`, so a growing daemon can be told apart: a leak
//! grows `allocated`, fragmentation only `resident`.

use skiff_invoker::metrics::{HeapFigures, HeapProbe};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Reads the allocator's figures (refreshing jemalloc's cached statistics first).
#[cfg(not(target_env = "msvc"))]
fn figures() -> Option<HeapFigures> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(HeapFigures {
        allocated: u64::try_from(stats::allocated::read().ok()?).ok()?,
        resident: u64::try_from(stats::resident::read().ok()?).ok()?,
    })
}

/// Where `/metrics` reads the allocator's figures from.
#[cfg(not(target_env = "msvc"))]
pub fn probe() -> Option<HeapProbe> {
    Some(figures)
}

/// The system allocator keeps no figures to export.
#[cfg(target_env = "msvc")]
pub fn probe() -> Option<HeapProbe> {
    None
}

#[cfg(all(test, not(target_env = "msvc")))]
mod tests {
    /// The figures are the whole process's, and other tests allocate and free on their own
    /// threads meanwhile: the block is large (64 MiB) and the checks leave it 16 MiB of
    /// room either way.
    #[test]
    fn figures_follow_allocations() {
        const BLOCK: usize = 64 << 20;
        const ROOM: u64 = 16 << 20;
        let before = super::figures().expect("jemalloc figures");
        let block = std::hint::black_box(vec![1u8; BLOCK]);
        let during = super::figures().expect("jemalloc figures");
        assert!(
            during.allocated + ROOM >= before.allocated + BLOCK as u64,
            "{before:?} then {during:?}"
        );
        assert!(during.resident >= during.allocated, "{during:?}");
        drop(block);
        let after = super::figures().expect("jemalloc figures");
        assert!(
            after.allocated + BLOCK as u64 <= during.allocated + ROOM,
            "{during:?} then {after:?}"
        );
    }
}
