//! The process's resident memory after start-up (issue 11: idle RSS).
//!
//! Most of latch's resident set is code and read-only data mapped from files (its own
//! executable, libc, libm), and the kernel maps a file's pages up to 64 KiB at a time around
//! each one touched. Start-up runs code that requests never run again (configuration
//! parsing, template compilation, the TLS root store, clap, provider set-up), and its pages
//! stay mapped. [`release_startup_memory`] drops them from the process's page tables once
//! the server is built: the pages stay in the page cache (nothing is read from disk again)
//! and what requests use is mapped back in at its first use. `bench/README.md` has the
//! figures.
use std::sync::Once;

/// Once per process, after the first server is built (later calls do nothing).
pub fn release_startup_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let released = imp::release_file_pages();
        tracing::debug!(released_kib = released / 1024, "start-up pages released");
    });
}

#[cfg(target_os = "linux")]
mod imp {
    use std::ops::Range;

    /// Drops the page-table entries of every private, read-only file mapping that holds no
    /// anonymous (copied-on-write) page; returns the bytes of the ranges dropped.
    pub(super) fn release_file_pages() -> usize {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return 0;
        };
        let mut released = 0;
        for range in droppable(&smaps) {
            // SAFETY: `range` is a private, read-only mapping of a file with no anonymous
            // page in it: every byte of it is the file's, unchanged. Dropping its page-table
            // entries loses nothing; the next access maps the same bytes again from the file
            // (from the page cache), as it does after the kernel itself reclaims such pages
            // under memory pressure. No code or data seen through a pointer changes, and
            // nothing in latch writes to or remaps these mappings.
            let done = unsafe {
                libc::madvise(
                    range.start as *mut libc::c_void,
                    range.end - range.start,
                    libc::MADV_DONTNEED,
                )
            };
            if done == 0 {
                released += range.end - range.start;
            }
        }
        released
    }

    /// The address ranges of `smaps` (the text of `/proc/self/smaps`) that are private, not
    /// writable, mapped from a file (not `[vdso]` and the like) and whose `Anonymous:` line
    /// says 0 kB (a mapping without that line is not taken).
    pub(super) fn droppable(smaps: &str) -> Vec<Range<usize>> {
        let mut ranges = Vec::new();
        // The mapping being read while it is a candidate, and whether it has no anonymous page.
        let mut current: Option<(Range<usize>, bool)> = None;
        for line in smaps.lines() {
            let mut fields = line.split_ascii_whitespace();
            let Some(first) = fields.next() else { continue };
            let header = first.split_once('-').and_then(|(start, end)| {
                Some((
                    usize::from_str_radix(start, 16).ok()?,
                    usize::from_str_radix(end, 16).ok()?,
                ))
            });
            if let Some((start, end)) = header {
                if let Some((range, true)) = current.take() {
                    ranges.push(range);
                }
                let perms = fields.next().unwrap_or("").as_bytes();
                // offset, device, inode, then the path (which may hold spaces).
                let path = line.splitn(6, ' ').nth(5).unwrap_or("").trim_start();
                let private_read_only =
                    perms.len() == 4 && perms[0] == b'r' && perms[1] == b'-' && perms[3] == b'p';
                if private_read_only && path.starts_with('/') && start < end {
                    current = Some((start..end, false));
                }
            } else if first == "Anonymous:" {
                if let Some((_, no_anonymous)) = &mut current {
                    *no_anonymous = fields.next() == Some("0");
                }
            }
        }
        if let Some((range, true)) = current {
            ranges.push(range);
        }
        ranges
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn release_file_pages() -> usize {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::imp::{droppable, release_file_pages};

    const SMAPS: &str = "\
55fa45176000-55fa4548d000 r--p 00000000 fd:01 123                        /opt/latch bin/latch
Size:               3164 kB
Rss:                1920 kB
Anonymous:             0 kB
55fa4548d000-55fa46006000 r-xp 00316000 fd:01 123                        /opt/latch bin/latch
Size:              11748 kB
Anonymous:             0 kB
55fa46006000-55fa46050000 r--p 00e8e000 fd:01 123                        /opt/latch bin/latch
Anonymous:           296 kB
55fa46050000-55fa4605b000 rw-p 00ed7000 fd:01 123                        /opt/latch bin/latch
Anonymous:            44 kB
7f0000000000-7f0000001000 r-xp 00000000 fd:01 456                        /usr/lib/libc.so.6
Anonymous:             0 kB
7f0000002000-7f0000003000 r--s 00000000 fd:01 789                        /tmp/latch.db-shm
Anonymous:             0 kB
7f0000004000-7f0000005000 r--p 00000000 fd:01 123                        /opt/latch bin/latch
7f0000006000-7f0000007000 r--p 00000000 00:00 0                          [vvar]
Anonymous:             0 kB
7f0000008000-7f0000009000 rw-p 00000000 00:00 0 
Anonymous:             4 kB
";

    #[test]
    fn only_unchanged_read_only_private_file_pages_are_dropped() {
        assert_eq!(
            droppable(SMAPS),
            vec![
                0x55fa45176000..0x55fa4548d000,
                0x55fa4548d000..0x55fa46006000,
                0x7f0000000000..0x7f0000001000,
            ],
            "not the relocated (anonymous) read-only part, the data, a shared mapping, a \
             mapping whose Anonymous line is missing, nor what is not a file"
        );
        assert!(droppable("").is_empty());
        assert!(droppable("Rss: 4 kB\nAnonymous: 0 kB\n").is_empty());
    }

    #[test]
    fn the_running_process_keeps_working_after_its_pages_are_dropped() {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_string_lossy();
        // The test binary's code is among them (its header line names its path).
        let ours = smaps
            .lines()
            .filter(|l| l.ends_with(&*exe) && l.split_ascii_whitespace().nth(1) == Some("r-xp"))
            .count();
        assert!(ours > 0, "no code mapping of {exe} in smaps");
        assert!(!droppable(&smaps).is_empty());
        assert!(release_file_pages() > 0);
        // Still running: its code and read-only data are mapped again where used.
        let again = std::fs::read_to_string("/proc/self/smaps").unwrap();
        assert!(!droppable(&again).is_empty());
    }
}
