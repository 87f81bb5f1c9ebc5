//! Where a log goes: standard output or a file that can be reopened (SIGHUP, for logrotate) and
//! rotated by size. Files are created with mode 0640; a live sensor appends to an existing file,
//! an offline read replaces it.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;

/// The buffer in front of each log file (bytes).
pub const BUFFER: usize = 1 << 16;

/// A log destination.
pub struct Sink {
    /// None: standard output.
    path: Option<String>,
    out: BufWriter<Box<dyn Write + Send>>,
    append: bool,
    /// Bytes written since the file was opened.
    pub bytes: u64,
    /// Times the file was rotated.
    pub rotations: u64,
}

fn open_file(path: &str, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).mode(0o640);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
}

impl Sink {
    /// Opens `path` (`None` = standard output).
    pub fn open(path: Option<&str>, append: bool) -> std::io::Result<Sink> {
        let (out, bytes): (Box<dyn Write + Send>, u64) = match path {
            None => (Box::new(std::io::stdout()), 0),
            Some(p) => {
                let f = open_file(p, append)?;
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                (Box::new(f), len)
            }
        };
        Ok(Sink {
            path: path.map(str::to_string),
            out: BufWriter::with_capacity(BUFFER, out),
            append,
            bytes,
            rotations: 0,
        })
    }

    pub fn is_stdout(&self) -> bool {
        self.path.is_none()
    }

    /// Closes and opens the file again (after logrotate moved it away). Standard output: a
    /// flush.
    pub fn reopen(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if let Some(p) = &self.path {
            let f = open_file(p, true)?;
            self.bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.out = BufWriter::with_capacity(BUFFER, Box::new(f));
        }
        Ok(())
    }

    /// When the file has grown past `limit` bytes: renames it to `PATH.N` (the first free N from
    /// 1) and starts a new one. Returns true when it rotated.
    pub fn rotate_if_over(&mut self, limit: u64) -> std::io::Result<bool> {
        let Some(p) = self.path.clone() else {
            return Ok(false);
        };
        if limit == 0 || self.bytes < limit {
            return Ok(false);
        }
        self.out.flush()?;
        let mut n = 1u32;
        let target = loop {
            let t = format!("{p}.{n}");
            if !std::path::Path::new(&t).exists() || n == u32::MAX {
                break t;
            }
            n += 1;
        };
        std::fs::rename(&p, &target)?;
        let f = open_file(&p, self.append)?;
        self.out = BufWriter::with_capacity(BUFFER, Box::new(f));
        self.bytes = 0;
        self.rotations += 1;
        Ok(true)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn append_rotate_reopen_and_mode() {
        let dir = std::env::temp_dir().join(format!("synwatch-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("log.jsonl");
        let ps = p.to_str().unwrap();
        std::fs::write(&p, "old\n").unwrap();
        let mut s = Sink::open(Some(ps), true).unwrap();
        writeln!(s, "new").unwrap();
        s.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\nnew\n");
        assert!(s.rotate_if_over(5).unwrap());
        writeln!(s, "after").unwrap();
        s.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("log.jsonl.1")).unwrap(),
            "old\nnew\n"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "after\n");
        // logrotate moves the file away; SIGHUP makes us reopen.
        std::fs::rename(&p, dir.join("moved")).unwrap();
        s.reopen().unwrap();
        writeln!(s, "fresh").unwrap();
        s.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "fresh\n");
        let mode = std::fs::metadata(dir.join("log.jsonl.1"))
            .unwrap()
            .permissions()
            .mode();
        let fresh_mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(fresh_mode & 0o777 & !0o640, 0, "{fresh_mode:o}");
        let _ = mode;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
