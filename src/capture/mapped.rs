//! A regular capture file read through glibc's memory-mapped stream (`fopen` mode `"rbm"`).
//!
//! libpcap reads a savefile with `fread` from a `FILE *`. Through an ordinary stream every
//! byte is copied twice before libpcap has it: by the kernel's `read` into the stream's
//! buffer, and by glibc from there into libpcap's. On a capture of mixed traffic the kernel's
//! copy and the page-cache lookups behind it were a fifth of the capture thread
//! (`_copy_to_iter` alone 9 % of all samples). A stream opened with `"rbm"` maps the file and
//! `fread` copies straight from the mapping: one copy and no system calls. libpcap still does
//! all the reading and parsing; it is handed the stream with `pcap_fopen_offline`.
//!
//! Two things a mapping brings that `read` has not, and what is done about them:
//! - **Resident set.** Every page read stays mapped, so the whole file would count in the
//!   process's RSS (page cache, not memory of ours, but it is what `time -v` and `top`
//!   show). [`Mapped::trim`] drops the pages read so far (`MADV_DONTNEED`; they stay in the
//!   page cache) in steps of [`TRIM`] bytes, so a large file adds about that much. A file
//!   under `MIN_MAPPED` (16 MiB) is not trimmed: it adds at most its size.
//! - **A file truncated while it is read.** Past the new end, a page the file was cut inside
//!   reads as zeros, and the pages after it raise `SIGBUS`. So every batch of records read
//!   is checked against the file's size before it is accounted and sent
//!   ([`Mapped::check`], one `fstat` per batch): records that end past it are dropped and the
//!   file is reported damaged there, as a truncated file is. The `SIGBUS` handler installed
//!   here, for an address fault inside the mapping this thread reads (it reads where the
//!   mapping is from the stream itself, so it follows glibc when the mapping grows or
//!   moves), puts a page of zeros in its place and raises a flag ([`shrank`]) that ends the
//!   reading. Any other `SIGBUS` gets the default action, as before.
//!
//! A file that grows while it is read is read on as it grows (glibc looks at the file's size
//! again at the end of its mapping). Linux with glibc only; elsewhere [`open`] returns `None`
//! and libpcap opens the file itself.

/// Bytes read between two trims of the resident set.
pub const TRIM: usize = 8 << 20;
/// Smallest stream buffer taken for a mapping (a read buffer is a few KiB).
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const MIN_MAPPED: usize = 16 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub use imp::{Mapped, open, shrank};

/// Elsewhere there is no mapped stream: the caller opens the file itself.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn open(_name: &str) -> Option<(pcap::Capture<pcap::Offline>, Mapped)> {
    None
}

/// Elsewhere nothing is mapped, so nothing shrinks under a mapping.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn shrank() -> bool {
    false
}

/// Elsewhere: nothing is mapped, nothing to trim.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub struct Mapped;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
impl Mapped {
    pub fn trim(&mut self) {}
    pub fn offset(&self) -> u64 {
        0
    }
    pub fn check(&self, _ends: &[u64]) -> Option<(usize, u64)> {
        None
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use nix::libc;
    use std::cell::Cell;
    use std::ffi::{CString, c_char, c_int, c_void};
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicUsize, Ordering, compiler_fence};

    unsafe extern "C" {
        fn fopen(path: *const c_char, mode: *const c_char) -> *mut c_void;
        fn fclose(stream: *mut c_void) -> c_int;
        /// glibc (`stdio_ext.h`): sets the stream's locking mode.
        fn __fsetlocking(stream: *mut c_void, kind: c_int) -> c_int;
        /// libpcap: opens a savefile on a stream (the stream is not closed on failure).
        fn pcap_fopen_offline(fp: *mut c_void, errbuf: *mut c_char) -> *mut c_void;
    }

    const FSETLOCKING_BYCALLER: c_int = 2;
    /// libpcap's `PCAP_ERRBUF_SIZE`.
    const ERRBUF: usize = 256;

    /// The start of glibc's `struct _IO_FILE` (`bits/types/struct_FILE.h`, unchanged since
    /// glibc 2.1): the read pointer and the buffer, which for a mapped stream is the mapping
    /// of the whole file from offset 0.
    #[repr(C)]
    struct FileHead {
        flags: c_int,
        read_ptr: *mut c_char,
        read_end: *mut c_char,
        read_base: *mut c_char,
        write_base: *mut c_char,
        write_ptr: *mut c_char,
        write_end: *mut c_char,
        buf_base: *mut c_char,
        buf_end: *mut c_char,
    }

    thread_local! {
        /// The mapped stream this thread reads, for the `SIGBUS` handler (which runs on the
        /// thread whose read faulted). Its buffer fields are where the mapping is now: glibc
        /// moves them before it touches a mapping it has grown or moved.
        static STREAM: Cell<*const FileHead> = const { Cell::new(std::ptr::null()) };
        /// Set by the `SIGBUS` handler: the file shrank under this thread's mapping.
        static SHRANK: Cell<bool> = const { Cell::new(false) };
    }

    /// The page size, read once before the handler is installed.
    static PAGE: AtomicUsize = AtomicUsize::new(4096);

    /// A mapped savefile: its stream, a handle for its size, and how much of the mapping has
    /// been handed back.
    pub struct Mapped {
        fp: *const FileHead,
        file: std::fs::File,
        /// The mapping's start as last seen (glibc may move it when the file grows).
        base: usize,
        /// Bytes from `base` already dropped from the resident set.
        pub(super) dropped: usize,
    }

    impl Mapped {
        /// (start, end, read position) of the stream's buffer.
        fn buffer(&self) -> (usize, usize, usize) {
            // SAFETY: `fp` is the live stream of the `pcap_t` this `Mapped` was opened with
            // (it is dropped after it, and the stream lives until then). Its leading fields
            // are read as glibc lays them out; only this thread uses the stream.
            let h = unsafe { &*self.fp };
            (h.buf_base as usize, h.buf_end as usize, h.read_ptr as usize)
        }

        /// How far into the file libpcap has read: the end of the last record it returned.
        pub fn offset(&self) -> u64 {
            let (base, _, at) = self.buffer();
            at.saturating_sub(base) as u64
        }

        /// Checks records read against the file's size now. `ends` are where the records
        /// end in the file, in order. A page the file was cut inside reads as zeros past the
        /// cut, with no fault, so records are trusted only once the file is known to have
        /// held their bytes after they were read. Returns how many of them are whole and the
        /// size, when some are not.
        pub fn check(&self, ends: &[u64]) -> Option<(usize, u64)> {
            let last = *ends.last()?;
            let size = self.file.metadata().map_or(0, |m| m.len());
            (last > size).then(|| (ends.partition_point(|&e| e <= size), size))
        }

        /// Drops the pages libpcap has read past from this process's resident set (they
        /// stay in the page cache). Call it now and then, from the thread that reads.
        pub fn trim(&mut self) {
            let (base, end, at) = self.buffer();
            // Only a mapping: a stream that fell back to reading has a buffer of a few KiB
            // (glibc's `st_blksize`), never `MIN_MAPPED`, and must not be touched.
            if end.saturating_sub(base) < super::MIN_MAPPED || !(base..=end).contains(&at) {
                return;
            }
            if base != self.base {
                self.base = base;
                self.dropped = 0;
            }
            let upto = (at - base) / super::TRIM * super::TRIM;
            if upto > self.dropped {
                // SAFETY: `[base + dropped, base + upto)` lies in the stream's read-only,
                // shared file mapping (checked above), page-aligned (`base` is a mapping's
                // start, `TRIM` a multiple of any page size), and already read: dropping it
                // only makes a later touch fault the page in again from the file.
                unsafe {
                    libc::madvise(
                        (base + self.dropped) as *mut c_void,
                        upto - self.dropped,
                        libc::MADV_DONTNEED,
                    );
                }
                self.dropped = upto;
            }
        }
    }

    impl Drop for Mapped {
        fn drop(&mut self) {
            STREAM.set(std::ptr::null());
        }
    }

    /// True once the file being read shrank under its mapping (a fault past its end): what
    /// was read since the last check may hold zeros instead of the file's bytes.
    pub fn shrank() -> bool {
        compiler_fence(Ordering::SeqCst);
        SHRANK.get()
    }

    /// An address fault in this thread's mapping means the file shrank: the vanished page is
    /// replaced by a page of zeros so the read can finish, and [`shrank`] tells the reader.
    /// Any other `SIGBUS` (another address, a hardware memory error, an I/O error, `kill`) is
    /// not ours: the default action is restored, and the fault, retried, ends the process.
    extern "C" fn on_sigbus(_: c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
        // SAFETY: everything here is a system call, a read of this thread's TLS, or a read
        // of the stream's fields (see `STREAM`); errno is put back as it was.
        unsafe {
            let errno = *libc::__errno_location();
            let fp = STREAM.get();
            let (addr, code) = if info.is_null() {
                (0, 0)
            } else {
                ((*info).si_addr() as usize, (*info).si_code)
            };
            let mut ours = false;
            if code == libc::BUS_ADRERR && !fp.is_null() {
                let (start, end) = ((*fp).buf_base as usize, (*fp).buf_end as usize);
                if (start..end).contains(&addr) {
                    let page = PAGE.load(Ordering::Relaxed);
                    let p = libc::mmap(
                        (addr - addr % page) as *mut c_void,
                        page,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    );
                    ours = p != libc::MAP_FAILED;
                }
            }
            if ours {
                SHRANK.set(true);
            } else {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
            }
            *libc::__errno_location() = errno;
        }
    }

    fn install_sigbus() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            PAGE.store(usize::try_from(page).unwrap_or(4096), Ordering::Relaxed);
            let act = SigAction::new(
                SigHandler::SigAction(on_sigbus),
                SaFlags::SA_SIGINFO,
                SigSet::empty(),
            );
            // SAFETY: the handler only makes system calls and reads memory it may read.
            let _ = unsafe { sigaction(Signal::SIGBUS, &act) };
        });
    }

    /// Opens `name` (a regular file) through a mapped stream; `None` if it cannot be, for
    /// whatever reason: the caller then opens it the ordinary way, which reports the error.
    pub fn open(name: &str) -> Option<(pcap::Capture<pcap::Offline>, Mapped)> {
        let cname = CString::new(name).ok()?;
        let file = std::fs::File::open(name).ok()?;
        install_sigbus();
        // SAFETY: `fopen` gets two NUL-terminated strings. The stream is used by this
        // thread alone (caller-side locking may then be set at any time). On success it
        // belongs to the `pcap_t`, whose close closes it; on failure it is closed here, and
        // the handler forgets it first.
        unsafe {
            let fp = fopen(cname.as_ptr(), c"rbm".as_ptr());
            if fp.is_null() {
                return None;
            }
            __fsetlocking(fp, FSETLOCKING_BYCALLER);
            SHRANK.set(false);
            STREAM.set(fp.cast());
            let mut err = [0 as c_char; ERRBUF];
            let p = pcap_fopen_offline(fp, err.as_mut_ptr());
            let Some(handle) = typed(pcap::Capture::<pcap::Offline>::as_ptr, p) else {
                STREAM.set(std::ptr::null());
                fclose(fp);
                return None;
            };
            let m = Mapped {
                fp: fp.cast(),
                file,
                base: 0,
                dropped: 0,
            };
            Some((pcap::Capture::from(handle), m))
        }
    }

    /// `p` as a pointer to the `pcap_t` type the `pcap` crate wraps (its `raw` module is
    /// private; the type is named here through the signature of `Capture::as_ptr`).
    fn typed<P>(
        _: fn(&pcap::Capture<pcap::Offline>) -> *mut P,
        p: *mut c_void,
    ) -> Option<NonNull<P>> {
        NonNull::new(p.cast())
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
pub(crate) mod tests {
    use super::*;

    /// A fresh directory for one test's files (the test removes it).
    pub(crate) fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("synwatch-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A classic pcap of `n` Ethernet records of `size` bytes each (byte pattern by index).
    pub(crate) fn write_pcap(path: &std::path::Path, n: u32, size: u32) {
        let mut v = Vec::with_capacity(24 + (n * (16 + size)) as usize);
        for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
            if w == 0x0004_0002 {
                v.extend_from_slice(&2u16.to_le_bytes());
                v.extend_from_slice(&4u16.to_le_bytes());
            } else {
                v.extend_from_slice(&w.to_le_bytes());
            }
        }
        for i in 0..n {
            for w in [i, 0, size, size] {
                v.extend_from_slice(&w.to_le_bytes());
            }
            v.extend((0..size).map(|k| (i as u8).wrapping_add(k as u8)));
        }
        std::fs::write(path, v).unwrap();
    }

    /// Cuts `path` to `len` bytes, as another process would, then reads on from record
    /// `next` until the reader is told the file shrank; checks every record before that and
    /// that they are about the records wholly inside `len` bytes.
    fn cut_and_read_on(
        path: &std::path::Path,
        len: u64,
        cap: &mut pcap::Capture<pcap::Offline>,
        mut next: u32,
    ) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap();
        loop {
            let r = cap.next_packet().map(|p| p.data[0]);
            if shrank() {
                break;
            }
            assert_eq!(r.expect("whole records before the cut"), next as u8);
            next += 1;
        }
        // Records wholly inside the cut are read; the one across it is not kept. (A cut on a
        // page boundary: the pages before it are whole.)
        let whole = ((len - 24) / 1016) as u32;
        assert!(
            next >= whole - 4 && next <= whole + 4,
            "{next} records, {whole} expected"
        );
    }

    #[test]
    fn reads_every_record_and_keeps_the_resident_set_small() {
        let dir = scratch("mapped-a");
        let path = dir.join("big.pcap");
        // 40 MB: past MIN_MAPPED, so the mapping is trimmed.
        write_pcap(&path, 40_000, 1000);
        let (mut cap, mut m) = open(path.to_str().unwrap()).expect("a regular pcap maps");
        let mut n = 0u32;
        while let Ok(p) = cap.next_packet() {
            assert_eq!(p.data.len(), 1000);
            assert_eq!(p.data[0], n as u8, "record {n} in order and whole");
            assert_eq!(p.data[999], (n as u8).wrapping_add(999u32 as u8));
            n += 1;
            if n.is_multiple_of(1000) {
                m.trim();
            }
        }
        assert_eq!(n, 40_000);
        assert!(!shrank());
        assert!(
            m.dropped >= 30 << 20,
            "read pages were dropped: {}",
            m.dropped
        );
        drop((cap, m));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_grew_then_shrank_is_flagged_not_fatal() {
        let dir = scratch("mapped-c");
        let path = dir.join("grows.pcap");
        write_pcap(&path, 24_000, 1000);
        let full = std::fs::read(&path).unwrap();
        // The file starts with 20 000 records and grows to 24 000 while it is read: glibc
        // grows (and may move) its mapping, which the handler must follow.
        std::fs::write(&path, &full[..24 + 20_000 * 1016]).unwrap();
        let (mut cap, _m) = open(path.to_str().unwrap()).expect("a regular pcap maps");
        for _ in 0..100 {
            cap.next_packet().unwrap();
        }
        std::fs::write(&path, &full).unwrap();
        for _ in 100..20_100 {
            cap.next_packet().unwrap();
        }
        cut_and_read_on(&path, 21 << 20, &mut cap, 20_100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_truncated_while_read_is_flagged_not_fatal() {
        let dir = scratch("mapped-b");
        let path = dir.join("shrinks.pcap");
        write_pcap(&path, 20_000, 1000);
        let (mut cap, _m) = open(path.to_str().unwrap()).expect("a regular pcap maps");
        for _ in 0..100 {
            cap.next_packet().unwrap();
        }
        // Another writer cuts the file to 1 MiB while it is being read.
        cut_and_read_on(&path, 1 << 20, &mut cap, 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
